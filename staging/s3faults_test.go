package staging_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/staging"
)

// storeOn returns an S3 store in a fresh bucket of srv, with a client
// configured as burst configures its own.
func storeOn(t *testing.T, srv *testminio.Server) (*staging.S3Store, *s3.Client) {
	client := srv.Client(t, staging.S3ClientOptions(true))
	return staging.NewS3Store(client, srv.NewBucket(t), "p", nil), client
}

// TestS3LargeFileIsMultipart: a file above the threshold goes up in
// concurrent parts and comes back whole.
func TestS3LargeFileIsMultipart(t *testing.T) {
	srv := testminio.Start(t)
	s, _ := storeOn(t, srv)
	dir := t.TempDir()
	data := make([]byte, 40<<20)
	for i := range data {
		data[i] = byte(i * 7 / 13)
	}
	src := filepath.Join(dir, "big.nrrd")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.Requests()
	etag, err := s.PutFile(context.Background(), "cas/sha256/big", src)
	if err != nil {
		t.Fatal(err)
	}
	// A multipart ETag is "<md5 of the part md5s>-<parts>".
	if !strings.Contains(etag, "-") {
		t.Errorf("ETag %s of a 40 MiB upload is not a multipart ETag", etag)
	}
	if n := s.Requests() - before; n < 4 {
		t.Errorf("40 MiB upload took %d requests; want create, parts and complete", n)
	}
	dst := filepath.Join(dir, "copy.nrrd")
	if err := s.GetFile(context.Background(), "cas/sha256/big", dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded copy differs (%d bytes, %v)", len(got), err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestS3StoreRidesOutARestart: while the server is down, calls wait and
// retry; when it is back they succeed, and conditional writes keep their
// meaning.
func TestS3StoreRidesOutARestart(t *testing.T) {
	srv := testminio.Start(t)
	s, _ := storeOn(t, srv)
	ctx := context.Background()
	etag, err := s.Create(ctx, "runs/r/leases/000000", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	back := make(chan struct{})
	go func() {
		time.Sleep(1500 * time.Millisecond)
		srv.Restart(t)
		close(back)
	}()
	start := time.Now()
	if _, err := s.Replace(ctx, "runs/r/leases/000000", []byte("v2"), etag); err != nil {
		t.Fatalf("Replace across a restart: %v", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("Replace returned after %s, before the server was back", el)
	}
	<-back
	if _, err := s.Create(ctx, "runs/r/leases/000000", []byte("v3")); !errors.Is(err, staging.ErrExists) {
		t.Errorf("Create of an existing key after the restart: %v, want ErrExists", err)
	}
	if data, _, err := s.Get(ctx, "runs/r/leases/000000"); err != nil || string(data) != "v2" {
		t.Errorf("after the restart: %q, %v; want v2", data, err)
	}
}

// TestS3StoreGivesUp: with the server gone for good, a call gives up after
// RetryFor with the cause, and a cancelled context ends it at once.
func TestS3StoreGivesUp(t *testing.T) {
	srv := testminio.Start(t)
	s, _ := storeOn(t, srv)
	srv.Stop()
	s.RetryFor = time.Second
	start := time.Now()
	_, err := s.Put(context.Background(), "k", []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "giving up after") {
		t.Errorf("Put to a stopped server: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("gave up after %s, want about 1s", el)
	}
	s.RetryFor = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := s.Put(ctx, "k", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with an expiring context: %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("context end took %s to stop the retries", el)
	}
}

// flakyAPI passes calls to a real client, failing chosen ones.
type flakyAPI struct {
	staging.S3API
	calls atomic.Int64
	// put decides, per PutObject call (numbered from 1), whether to fail it
	// before sending (before), or to send it and then lose the answer
	// (after), and with which error.
	put func(n int64) (err error, after bool)
}

func (f *flakyAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	n := f.calls.Add(1)
	err, after := f.put(n)
	if err == nil {
		return f.S3API.PutObject(ctx, in, o...)
	}
	if after {
		f.S3API.PutObject(ctx, in, o...)
	}
	return nil, err
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

var connReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

// TestS3StoreRetriesOnlyWhatIsRetryable: throttling and broken connections
// are retried; a denial is not; a write whose answer was lost counts as
// done when the object holds exactly what was written.
func TestS3StoreRetriesOnlyWhatIsRetryable(t *testing.T) {
	srv := testminio.Start(t)
	client := srv.Client(t, staging.S3ClientOptions(true))
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	cases := []struct {
		name      string
		put       func(n int64) (error, bool)
		wantCalls int64
		wantErr   string
	}{
		{"slowdown then ok", func(n int64) (error, bool) {
			if n <= 2 {
				return apiErr("SlowDown"), false
			}
			return nil, false
		}, 3, ""},
		{"server going down then ok", func(n int64) (error, bool) {
			if n == 1 {
				return apiErr("ClientDisconnected"), false
			}
			return nil, false
		}, 2, ""},
		{"reset then ok", func(n int64) (error, bool) {
			if n == 1 {
				return connReset, false
			}
			return nil, false
		}, 2, ""},
		{"denied", func(n int64) (error, bool) { return apiErr("AccessDenied"), false }, 1, "access to s3://"},
		{"expired", func(n int64) (error, bool) { return apiErr("ExpiredToken"), false }, 1, "have expired"},
		{"wrong region", func(n int64) (error, bool) { return apiErr("PermanentRedirect"), false }, 1, "AWS_REGION"},
		{"bad request", func(n int64) (error, bool) { return apiErr("InvalidArgument"), false }, 1, "InvalidArgument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := &flakyAPI{S3API: client, put: c.put}
			s := staging.NewS3Store(api, bucket, c.name, nil)
			_, err := s.Put(ctx, "k", []byte("x"))
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("Put: %v, want %q", err, c.wantErr)
			}
			if got := api.calls.Load(); got != c.wantCalls {
				t.Errorf("%d PutObject calls, want %d", got, c.wantCalls)
			}
		})
	}

	t.Run("lost answers", func(t *testing.T) {
		// The first attempt of each write reaches the server, but its
		// answer is lost; the retry is refused by the precondition.
		api := &flakyAPI{S3API: client}
		api.put = func(n int64) (error, bool) {
			if n%2 == 1 {
				return connReset, true
			}
			return nil, false
		}
		s := staging.NewS3Store(api, bucket, "lost", nil)
		etag, err := s.Create(ctx, "lease", []byte("mine"))
		if err != nil {
			t.Fatalf("Create whose answer was lost: %v, want success", err)
		}
		if _, err := s.Replace(ctx, "lease", []byte("mine, renewed"), etag); err != nil {
			t.Fatalf("Replace whose answer was lost: %v, want success", err)
		}
		// Someone else's object is still refused.
		other := staging.NewS3Store(client, bucket, "lost", nil)
		if _, err := other.Put(ctx, "theirs", []byte("theirs")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "theirs", []byte("mine")); !errors.Is(err, staging.ErrExists) {
			t.Errorf("Create over another's object: %v, want ErrExists", err)
		}
	})
}

// TestS3AccessErrors: a missing bucket and bad credentials each get one
// line saying which, from a real server.
func TestS3AccessErrors(t *testing.T) {
	srv := testminio.Start(t)
	ctx := context.Background()
	s := staging.NewS3Store(srv.Client(t, staging.S3ClientOptions(true)), "no-such-bucket", "", nil)
	if err := s.Check(ctx); !errors.Is(err, staging.ErrAccess) || !strings.Contains(err.Error(), "bucket no-such-bucket does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	bad := srv.Client(t, staging.S3ClientOptions(true), func(o *s3.Options) {
		o.Credentials = aws.AnonymousCredentials{}
	})
	s = staging.NewS3Store(bad, srv.NewBucket(t), "", nil)
	if err := s.Check(ctx); !errors.Is(err, staging.ErrAccess) || !strings.Contains(err.Error(), "denied") {
		t.Errorf("anonymous access: %v", err)
	}
	wrong := srv.Client(t, staging.S3ClientOptions(true), func(o *s3.Options) {
		o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "burstminio", SecretAccessKey: "wrong-secret"}, nil
		})
	})
	s = staging.NewS3Store(wrong, srv.NewBucket(t), "", nil)
	if err := s.Check(ctx); !errors.Is(err, staging.ErrAccess) || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("wrong secret: %v", err)
	}
}
