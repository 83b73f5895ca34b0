package staging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3API is the part of the S3 API that burst calls, with the SDK's
// signatures: *s3.Client implements it, and so can a test's fake.
type S3API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	// Multipart uploads, for the transfer manager.
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// S3Store is a Store in an S3 bucket, under a prefix: the run store that
// machines anywhere share. Create and Replace are S3's conditional writes
// (If-None-Match: * and If-Match: etag), which S3 enforces atomically.
//
// The store retries what is worth retrying (throttling, server errors,
// broken connections) with exponential backoff and jitter, for up to
// RetryFor, and nothing else. A conditional write whose answer was lost
// may have taken effect; when its retry is refused, the store reads the
// object back and counts the write as done if the object holds exactly
// what was written. Hand it a client whose own retries are off (see
// S3ClientOptions), so that the two do not multiply.
type S3Store struct {
	api    S3API
	tm     *transfermanager.Client
	bucket string
	prefix string // "" or ending with "/"
	log    *slog.Logger

	// RetryFor bounds the time spent retrying one call (default 2 min).
	RetryFor time.Duration
	requests atomic.Int64
	clock    *s3Clock
}

// Requests returns how many requests the store has sent, retries
// included.
func (s *S3Store) Requests() int64 { return s.requests.Load() }

// S3ClientOptions configures an S3 client for S3Store: no SDK retries (the
// store retries itself), an HTTP client that gives up on a connection
// that cannot be made within s3ConnectTimeout or a server that does not
// start answering within s3HeaderTimeout (so that no call, a lease
// renewal least of all, hangs on a dead connection), no log line for
// responses without a checksum (small objects often have none), and
// path-style addressing when pathStyle is set, as S3-compatible servers on
// a custom endpoint need.
func S3ClientOptions(pathStyle bool) func(*s3.Options) {
	return func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.HTTPClient = awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3ConnectTimeout }).
			WithTransportOptions(func(t *http.Transport) {
				t.TLSHandshakeTimeout = s3ConnectTimeout
				t.ResponseHeaderTimeout = s3HeaderTimeout
			})
		o.DisableLogOutputChecksumValidationSkipped = true
		if pathStyle {
			o.UsePathStyle = true
		}
	}
}

// Timeouts of the S3 client's connections (see S3ClientOptions).
const (
	s3ConnectTimeout = 10 * time.Second
	s3HeaderTimeout  = 30 * time.Second
)

// multipartThreshold is the size from which PutFile uploads in parts,
// concurrently.
const multipartThreshold = 16 << 20

// NewS3Store returns the store at s3://bucket/prefix. It sends no request.
func NewS3Store(api S3API, bucket, prefix string, log *slog.Logger) *S3Store {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &S3Store{bucket: bucket, prefix: prefix, log: log, RetryFor: 2 * time.Minute, clock: &s3Clock{}}
	s.api = countingAPI{api: api, n: &s.requests, opt: s.clock.option}
	s.tm = transfermanager.New(s.api, func(o *transfermanager.Options) {
		o.MultipartUploadThreshold = multipartThreshold
		o.PartSizeBytes = 8 << 20
		o.Concurrency = 8
	})
	return s
}

// Location returns s3://bucket/prefix.
func (s *S3Store) Location() string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *S3Store) key(key string) (*string, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + key), nil
}

// do runs one request, retrying it while its error is retryable, with
// exponential backoff and jitter, within RetryFor. Context errors end it at
// once. It reports whether some failed attempt may have taken effect.
func (s *S3Store) do(ctx context.Context, what string, call func() error) (maybeDone bool, err error) {
	deadline := time.Now().Add(s.RetryFor)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return maybeDone, err
		}
		err = call()
		if err == nil || !retryable(err) {
			return maybeDone, err
		}
		if ctx.Err() != nil {
			return maybeDone, ctx.Err()
		}
		maybeDone = maybeDone || ambiguous(err)
		wait := backoff/2 + rand.N(backoff)
		if time.Now().Add(wait).After(deadline) {
			return maybeDone, fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		s.log.Debug("retrying s3 request", "op", what, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return maybeDone, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// wrap gives an error its context, turning access problems into ErrAccess.
func (s *S3Store) wrap(op, key string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if a := accessError(err, s.bucket); a != nil {
		return a
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func (s *S3Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	var etag string
	_, err = s.do(ctx, "get "+key, func() error {
		out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: k})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		data, err = io.ReadAll(out.Body)
		etag = aws.ToString(out.ETag)
		return err
	})
	if isNotFound(err) {
		return nil, "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, "", s.wrap("reading", key, err)
	}
	return data, etag, nil
}

func (s *S3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := s.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	var out *s3.HeadObjectOutput
	_, err = s.do(ctx, "stat "+key, func() (err error) {
		out, err = s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: k})
		return err
	})
	if isNotFound(err) {
		return ObjectInfo{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, s.wrap("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), Modified: aws.ToTime(out.LastModified)}, nil
}

// put writes data with the given preconditions.
func (s *S3Store) put(ctx context.Context, key string, data []byte, ifNoneMatch, ifMatch *string) (string, bool, error) {
	k, err := s.key(key)
	if err != nil {
		return "", false, err
	}
	var etag string
	maybe, err := s.do(ctx, "write "+key, func() error {
		out, err := s.api.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: k, Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch:   ifNoneMatch, IfMatch: ifMatch,
		})
		if err != nil {
			return err
		}
		etag = aws.ToString(out.ETag)
		return nil
	})
	return etag, maybe, err
}

func (s *S3Store) Put(ctx context.Context, key string, data []byte) (string, error) {
	etag, _, err := s.put(ctx, key, data, nil, nil)
	if err != nil {
		return "", s.wrap("writing", key, err)
	}
	return etag, nil
}

func (s *S3Store) Create(ctx context.Context, key string, data []byte) (string, error) {
	etag, maybe, err := s.put(ctx, key, data, aws.String("*"), nil)
	if isPreconditionFailed(err) {
		if maybe {
			if etag, ok := s.holds(ctx, key, data); ok {
				return etag, nil
			}
		}
		return "", fmt.Errorf("creating %s: %w", key, ErrExists)
	}
	if err != nil {
		return "", s.wrap("creating", key, err)
	}
	return etag, nil
}

func (s *S3Store) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	newTag, maybe, err := s.put(ctx, key, data, nil, aws.String(etag))
	switch {
	case isNotFound(err):
		return "", fmt.Errorf("replacing %s: %w", key, ErrNotFound)
	case isPreconditionFailed(err):
		if maybe {
			if etag, ok := s.holds(ctx, key, data); ok {
				return etag, nil
			}
		}
		// Some servers answer 412 rather than 404 for a missing key.
		if _, err := s.Stat(ctx, key); errors.Is(err, ErrNotFound) {
			return "", fmt.Errorf("replacing %s: %w", key, ErrNotFound)
		}
		return "", fmt.Errorf("replacing %s: %w", key, ErrChanged)
	case err != nil:
		return "", s.wrap("replacing", key, err)
	}
	return newTag, nil
}

// holds reports whether the object at key holds exactly data, and its
// ETag: after a conditional write whose answer was lost, this tells
// whether the write took effect.
func (s *S3Store) holds(ctx context.Context, key string, data []byte) (string, bool) {
	cur, etag, err := s.Get(ctx, key)
	return etag, err == nil && bytes.Equal(cur, data)
}

func (s *S3Store) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.do(ctx, "delete "+key, func() error {
		_, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: k})
		return err
	})
	if err != nil && !isNotFound(err) {
		return s.wrap("deleting", key, err)
	}
	return nil
}

// list pages through ListObjectsV2 under prefix, calling fn for each page.
func (s *S3Store) list(ctx context.Context, prefix, delimiter string, fn func(*s3.ListObjectsV2Output)) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	for {
		var out *s3.ListObjectsV2Output
		_, err := s.do(ctx, "list "+prefix, func() (err error) {
			out, err = s.api.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return s.wrap("listing", prefix, err)
		}
		fn(out)
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var infos []ObjectInfo
	err := s.list(ctx, prefix, "", func(out *s3.ListObjectsV2Output) {
		for _, o := range out.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if ValidKey(key) != nil {
				continue // not written by burst
			}
			infos = append(infos, ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), Modified: aws.ToTime(o.LastModified)})
		}
	})
	return infos, err
}

func (s *S3Store) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("listing %s: prefix must end with a slash", prefix)
	}
	var dirs []string
	err := s.list(ctx, prefix, "/", func(out *s3.ListObjectsV2Output) {
		for _, p := range out.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(p.Prefix), s.prefix+prefix), "/")
			if name != "" && !strings.Contains(name, "/") {
				dirs = append(dirs, name)
			}
		}
	})
	return dirs, err
}

// PutFile uploads a local file through the transfer manager: in parts,
// concurrently, from multipartThreshold on.
func (s *S3Store) PutFile(ctx context.Context, key, path string) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", err
	}
	var etag string
	_, err = s.do(ctx, "upload "+key, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		out, err := s.tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: &s.bucket, Key: k, Body: f})
		if err != nil {
			return err
		}
		etag = aws.ToString(out.ETag)
		return nil
	})
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("uploading %s: %w", path, err)
		}
		return "", s.wrap("uploading", key, err)
	}
	return etag, nil
}

// GetFile downloads an object into path through the transfer manager (in
// concurrent ranges for large objects), replacing path only when the whole
// object has arrived.
func (s *S3Store) GetFile(ctx context.Context, key, path string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("downloading %s: %w", key, err)
	}
	_, err = s.do(ctx, "download "+key, func() error {
		tmp, err := os.CreateTemp(dir, ".tmp-download-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		_, err = s.tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{Bucket: &s.bucket, Key: k, WriterAt: tmp})
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	})
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return s.wrap("downloading", key, err)
	}
	return nil
}

// Check verifies that the bucket can be listed with the credentials in
// use, and returns one actionable line (wrapping ErrAccess) when not.
func (s *S3Store) Check(ctx context.Context) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1)}
	_, err := s.do(ctx, "check", func() error {
		_, err := s.api.ListObjectsV2(ctx, in)
		return err
	})
	if err != nil {
		return s.wrap("checking", s.Location(), err)
	}
	return nil
}

// countingAPI counts every request sent through it, and adds opt to
// each.
type countingAPI struct {
	api S3API
	n   *atomic.Int64
	opt func(*s3.Options)
}

func (c countingAPI) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.n.Add(1)
	return c.api.GetObject(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c.n.Add(1)
	return c.api.HeadObject(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.n.Add(1)
	return c.api.PutObject(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	c.n.Add(1)
	return c.api.DeleteObject(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.n.Add(1)
	return c.api.ListObjectsV2(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c.n.Add(1)
	return c.api.CreateMultipartUpload(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c.n.Add(1)
	return c.api.UploadPart(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c.n.Add(1)
	return c.api.CompleteMultipartUpload(ctx, in, append(o, c.opt)...)
}

func (c countingAPI) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	c.n.Add(1)
	return c.api.AbortMultipartUpload(ctx, in, append(o, c.opt)...)
}

// Now returns the store's time: the Date of the latest answer, plus the
// time elapsed since on this machine's monotonic clock (see Store.Now).
// With no recent answer it asks the server first. A server that sends no
// Date (a test's fake) leaves this machine's clock.
func (s *S3Store) Now(ctx context.Context) (time.Time, error) {
	if t, ok := s.clock.now(); ok {
		return t, nil
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1)}
	if _, err := s.do(ctx, "read the clock", func() error {
		_, err := s.api.ListObjectsV2(ctx, in)
		return err
	}); err != nil {
		return time.Time{}, s.wrap("reading the clock of", s.Location(), err)
	}
	if t, ok := s.clock.now(); ok {
		return t, nil
	}
	return time.Now(), nil
}

// s3Clock estimates the S3 server's time from the Date of its answers.
type s3Clock struct {
	mu   sync.Mutex
	date time.Time // the best Date seen
	at   time.Time // when it arrived, with its monotonic reading
}

// s3ClockFresh is how long one Date serves before another is needed:
// short enough that the rates of two clocks cannot drift apart in it.
const s3ClockFresh = time.Minute

func (c *s3Clock) now() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) > s3ClockFresh {
		return time.Time{}, false
	}
	return c.date.Add(time.Since(c.at)), true
}

// observe records a Date seen in an answer. Dates have a resolution of a
// second, so the estimate keeps the latest: the one closest to the truth
// (which it never passes).
func (c *s3Clock) observe(date time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stale := c.at.IsZero() || time.Since(c.at) > s3ClockFresh/2
	if stale || date.After(c.date.Add(time.Since(c.at))) {
		c.date, c.at = date, time.Now()
	}
}

// option adds to a request a step that reads the Date of its answer,
// errors included.
func (c *s3Clock) option(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("burstStoreClock",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil {
					if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
						c.observe(d)
					}
				}
				return out, md, err
			}), middleware.After)
	})
}

// ParseS3URL splits s3://bucket/prefix into its bucket and prefix (without
// slashes at either end), checking the bucket name against S3's rules and
// the prefix against ValidKey's.
func ParseS3URL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// URL", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if err := validBucket(bucket); err != nil {
		return "", "", fmt.Errorf("%s: %w", u, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := ValidKey(prefix); err != nil {
			return "", "", fmt.Errorf("%s: invalid prefix: %w", u, err)
		}
	}
	return bucket, prefix, nil
}

// validBucket checks a bucket name: 3 to 63 lowercase letters, digits,
// dots and hyphens, starting and ending with a letter or digit.
func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for i, c := range b {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' || !alnum && (i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, '.' and '-', and must start and end with a letter or digit", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q has two dots in a row", b)
	}
	return nil
}
