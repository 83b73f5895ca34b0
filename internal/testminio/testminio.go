// Package testminio runs a real S3 server, MinIO, for tests: one private
// server per call to Start, listening on loopback ports only, with its data in
// the test's temporary folder and fixed dummy credentials. Clients made here
// talk to that server alone; nothing reads the AWS shared config or
// credentials, so a test can never reach a real AWS account.
//
// The binary comes from $BURST_MINIO, else <module root>/.cache/bin/minio,
// which scripts/minio.sh (run by `make test`) builds.
package testminio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/internal/testserver"
)

const (
	accessKey = "burstminio"
	secretKey = "burstminio-secret"
	region    = "us-east-1"

	// readyTimeout bounds the wait for a starting server to serve requests.
	readyTimeout = 30 * time.Second
)

// Server is one running MinIO server.
type Server struct {
	// Endpoint is the S3 API's URL, http://127.0.0.1:PORT.
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string

	bin      string
	dataDir  string
	certsDir string
	addr     string // host:port of the S3 API
	console  string // host:port of the console
	proc     testserver.Process
}

// Binary returns the path of the MinIO server binary, failing the test
// (never skipping it) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BURST_MINIO"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("BURST_MINIO=%s: %v", p, err)
		}
		return p
	}
	p := filepath.Join(testpy.ModuleRoot(t), ".cache", "bin", "minio")
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("no MinIO server for the tests: run scripts/minio.sh (or make test), or set BURST_MINIO (%v)", err)
	}
	return p
}

// Start starts a MinIO server for the test and waits until it serves
// requests. The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	tmp := t.TempDir()
	s := &Server{
		AccessKey: accessKey,
		SecretKey: secretKey,
		Region:    region,
		bin:       bin,
		dataDir:   filepath.Join(tmp, "data"),
		certsDir:  filepath.Join(tmp, "certs"),
	}
	for _, dir := range []string{s.dataDir, s.certsDir} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("testminio: %v", err)
		}
	}
	// Registered after t.TempDir, so it runs before the folder is removed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("MinIO server log (%s):\n%s", s.Endpoint, s.Log())
		}
		s.Stop()
	})

	err := s.proc.StartOnFreePorts(2, func(addrs []string) error {
		s.addr, s.console = addrs[0], addrs[1]
		s.Endpoint = "http://" + s.addr
		return s.start()
	})
	if err != nil {
		t.Fatalf("testminio: %v", err)
	}
	return s
}

// Restart stops the server and starts it again on the same port and data
// folder, and waits until it serves requests: what a client sees of a server
// that goes away and comes back.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.Stop()
		t.Fatalf("testminio: restarting: %v\nserver log:\n%s", err, s.Log())
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within a
// few seconds. It waits until the process is gone, and does nothing when the
// server is not running.
func (s *Server) Stop() { s.proc.Stop() }

// Log returns the tail of the server's output, from its latest start.
func (s *Server) Log() string { return s.proc.Log() }

// Client returns an S3 client for the server, with the server's static
// credentials and path-style addressing; it reads no AWS config files and no
// environment variables. optFns adjust the client's options.
func (s *Server) Client(t testing.TB, optFns ...func(*s3.Options)) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials: aws.NewCredentialsCache(
			credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
	}, optFns...)
}

var bucketSeq atomic.Int64

// NewBucket creates a bucket with a fresh unique name, and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testminio: bucket name: %v", err)
	}
	name := fmt.Sprintf("burst-test-%d-%s", bucketSeq.Add(1), hex.EncodeToString(b[:]))
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if _, err := s.Client(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testminio: creating bucket %s: %v", name, err)
	}
	return name
}

// Env returns environment variables that point an aws-sdk-go-v2 default
// config (config.LoadDefaultConfig) at the server, and keep it from reading
// any real AWS config, credentials or instance metadata. Append them to
// os.Environ(): later entries win.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// start launches the server on s.addr and waits until it is ready. The
// caller stops it on error.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, "server",
		"--address", s.addr,
		"--console-address", s.console,
		"--certs-dir", s.certsDir,
		s.dataDir)
	cmd.Env = testserver.Environ([]string{"MINIO_", "AWS_"},
		"MINIO_ROOT_USER="+accessKey,
		"MINIO_ROOT_PASSWORD="+secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// Small buffer pools, and no refusal of a data folder on the root
		// drive.
		"MINIO_CI_CD=1",
	)
	exited, err := s.proc.Start(cmd)
	if err != nil {
		return err
	}
	if err := testserver.WaitReady(exited, readyTimeout, s.ready); err != nil {
		return fmt.Errorf("MinIO at %s: %w", s.Endpoint, err)
	}
	return nil
}

var healthClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// ready reports whether the server serves S3 requests: the liveness check
// answers 200 without marking the server offline, and the cluster check
// (object layer, bucket metadata and IAM initialised) answers 200.
func (s *Server) ready() error {
	for _, path := range []string{"/minio/health/live", "/minio/health/cluster"} {
		resp, err := healthClient.Get(s.Endpoint + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		if st := resp.Header.Get("X-Minio-Server-Status"); st != "" {
			return fmt.Errorf("%s: server status %s", path, st)
		}
	}
	return nil
}
