package staging_test

import (
	"strings"
	"testing"

	"github.com/slicerburst/burst/staging"
)

func TestParseS3URL(t *testing.T) {
	cases := []struct {
		in, bucket, prefix, err string
	}{
		{"s3://my-bucket", "my-bucket", "", ""},
		{"s3://my-bucket/", "my-bucket", "", ""},
		{"s3://my.bucket.2/team/burst/", "my.bucket.2", "team/burst", ""},
		{"s3://my-bucket/a//b", "", "", "invalid prefix"},
		{"s3://my-bucket/../x", "", "", "invalid prefix"},
		{"s3://My-Bucket/x", "", "", "lowercase"},
		{"s3://ab", "", "", "3 to 63"},
		{"s3://-bucket", "", "", "start and end"},
		{"s3://bucket-", "", "", "start and end"},
		{"s3://a..b", "", "", "two dots"},
		{"s3:///prefix", "", "", "3 to 63"},
		{"https://bucket/x", "", "", "not an s3:// URL"},
	}
	for _, c := range cases {
		b, p, err := staging.ParseS3URL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseS3URL(%q) = %q, %q, %v; want an error with %q", c.in, b, p, err, c.err)
			}
			continue
		}
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", c.in, b, p, err, c.bucket, c.prefix)
		}
	}
}

func FuzzParseS3URL(f *testing.F) {
	for _, s := range []string{"s3://bucket/prefix", "s3://a.b-c/x/y/", "s3://", "s3://bb/\x00", "s3://b\u00e9b/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		b, p, err := staging.ParseS3URL(u)
		if err != nil {
			return
		}
		// What parses names a store whose keys are valid under it.
		if p != "" {
			if err := staging.ValidKey(p + "/runs/x/manifest.json"); err != nil {
				t.Errorf("ParseS3URL(%q) gave prefix %q: %v", u, p, err)
			}
		}
		if b2, p2, err := staging.ParseS3URL("s3://" + b + "/" + p); err != nil || b2 != b || p2 != p {
			t.Errorf("round trip of %q: %q %q %v", u, b2, p2, err)
		}
	})
}
