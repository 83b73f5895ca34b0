package testminio

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// httpStatus returns the HTTP status code and S3 error code of a failed call.
func httpStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("not an HTTP response error: %v", err)
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return re.HTTPStatusCode(), code
}

func TestServer(t *testing.T) {
	srv := Start(t)
	c := srv.Client(t)
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	put := func(key, body string, opt func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		if opt != nil {
			opt(in)
		}
		return c.PutObject(ctx, in)
	}
	get := func(key string) string {
		t.Helper()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GetObject %s: %v", key, err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		return string(b)
	}
	ifNoneMatch := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }
	ifMatch := func(etag string) func(*s3.PutObjectInput) {
		return func(in *s3.PutObjectInput) { in.IfMatch = aws.String(etag) }
	}

	// Plain put and get; ETags come back quoted, as from S3.
	out, err := put("a/one", "first", nil)
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	etag := aws.ToString(out.ETag)
	t.Logf("PutObject ETag: %s", etag)
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Errorf("ETag %q is not quoted", etag)
	}
	if got := get("a/one"); got != "first" {
		t.Fatalf("GetObject = %q, want %q", got, "first")
	}

	// If-None-Match: * creates a missing key, and refuses an existing one.
	if _, err := put("a/new", "created", ifNoneMatch); err != nil {
		t.Fatalf("PutObject If-None-Match:* on a missing key: %v", err)
	}
	_, err = put("a/one", "second", ifNoneMatch)
	if err == nil {
		t.Fatal("PutObject If-None-Match:* on an existing key succeeded; the server does not enforce conditional writes")
	}
	status, code := httpStatus(t, err)
	t.Logf("If-None-Match:* on an existing key: HTTP %d %s", status, code)
	if status != 412 {
		t.Errorf("If-None-Match:* on an existing key: HTTP %d %s, want 412", status, code)
	}

	// If-Match replaces only the version it names.
	_, err = put("a/one", "second", ifMatch(`"0123456789abcdef0123456789abcdef"`))
	if err == nil {
		t.Fatal("PutObject If-Match with a wrong ETag succeeded")
	}
	status, code = httpStatus(t, err)
	t.Logf("If-Match with a wrong ETag: HTTP %d %s", status, code)
	if status != 412 {
		t.Errorf("If-Match with a wrong ETag: HTTP %d %s, want 412", status, code)
	}
	_, err = put("a/missing", "x", ifMatch(etag))
	if err == nil {
		t.Fatal("PutObject If-Match on a missing key succeeded")
	}
	status, code = httpStatus(t, err)
	t.Logf("If-Match on a missing key: HTTP %d %s", status, code)
	if status != 404 && status != 412 {
		t.Errorf("If-Match on a missing key: HTTP %d %s, want 404 or 412", status, code)
	}
	out, err = put("a/one", "second", ifMatch(etag))
	if err != nil {
		t.Fatalf("PutObject If-Match with the current ETag: %v", err)
	}
	if aws.ToString(out.ETag) == etag {
		t.Errorf("ETag unchanged after a replace: %s", etag)
	}
	// Whether an ETag without its quotes matches is logged, not required.
	unquoted := strings.Trim(aws.ToString(out.ETag), `"`)
	if _, err := put("a/one", "third", ifMatch(unquoted)); err != nil {
		t.Logf("If-Match with an unquoted current ETag: %v", err)
	} else {
		t.Logf("If-Match with an unquoted current ETag: accepted")
	}

	// Of racing conditional writes to one key, exactly one wins. Each racer
	// writes different bytes: a single-part ETag is the MD5 of the content,
	// so a write of the bytes already there keeps the ETag, and a racer
	// holding that ETag would rightly succeed too.
	race := func(what, key string, opt func(*s3.PutObjectInput)) {
		t.Helper()
		const racers = 8
		errs := make(chan error, racers)
		for i := range racers {
			go func() {
				_, err := put(key, what+strings.Repeat("r", i+1), opt)
				errs <- err
			}()
		}
		wins := 0
		for range racers {
			err := <-errs
			if err == nil {
				wins++
				continue
			}
			status, code := httpStatus(t, err)
			t.Logf("racing %s loser: HTTP %d %s", what, status, code)
			if status != 412 && status != 409 {
				t.Errorf("racing %s loser: HTTP %d %s, want 412 or 409", what, status, code)
			}
		}
		if wins != 1 {
			t.Errorf("%d of %d racing %s writes succeeded, want 1", wins, racers, what)
		}
	}
	race("If-None-Match:*", "a/race", ifNoneMatch)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/race")})
	if err != nil {
		t.Fatalf("HeadObject a/race: %v", err)
	}
	race("If-Match", "a/race", ifMatch(aws.ToString(head.ETag)))

	// The data outlives a restart on the same port.
	want := get("a/one")
	srv.Restart(t)
	if got := get("a/one"); got != want {
		t.Fatalf("after Restart, GetObject = %q, want %q", got, want)
	}
	if got := get("a/new"); got != "created" {
		t.Fatalf("after Restart, GetObject a/new = %q, want %q", got, "created")
	}
}

// TestEnv checks that a default SDK config, built from Env alone, reaches the
// server.
func TestEnv(t *testing.T) {
	srv := Start(t)
	bucket := srv.NewBucket(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	c := s3.NewFromConfig(cfg)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("v"),
	}); err != nil {
		t.Fatalf("PutObject through the default config: %v", err)
	}
	if _, err := srv.Client(t).HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("k"),
	}); err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
}
