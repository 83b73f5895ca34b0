// Package testmoto runs a real EC2 API emulator, moto's server, for tests:
// one private server per Start, listening on a loopback port only, in its own
// process group. Clients made here talk to that server alone, with dummy
// credentials; nothing reads the AWS shared config or credentials, so a test
// can never reach a real AWS account.
//
// The executable comes from $BURST_MOTO, else
// <module root>/.cache/moto/bin/moto_server, which scripts/moto.sh (run by
// `make moto` and `make test`) installs.
//
// moto keeps all its state in memory: Reset empties it, and a server that
// stops forgets everything. What moto does and does not emulate of EC2 is
// pinned down by this package's tests (moto_test.go).
package testmoto

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/internal/testserver"
)

const (
	// AccessKey and SecretKey are the dummy credentials of the clients made
	// here. moto accepts any credentials: all of them act in its default
	// account, 123456789012.
	AccessKey = "burstmoto"
	SecretKey = "burstmoto-secret"
	// Region is the region of the clients made here and of Env.
	Region = "us-east-1"
	// Account is the account that moto puts every resource in.
	Account = "123456789012"

	// readyTimeout bounds the wait for a starting server to answer.
	readyTimeout = 60 * time.Second
)

// Server is one running moto server.
type Server struct {
	endpoint string
	bin      string
	proc     testserver.Process
}

// Binary returns the path of the moto_server executable, failing the test
// (never skipping it) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := binary(testpy.ModuleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func binary(root string) (string, error) {
	if p := os.Getenv("BURST_MOTO"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("BURST_MOTO=%s: %w", p, err)
		}
		return p, nil
	}
	p := filepath.Join(root, ".cache", "moto", "bin", "moto_server")
	if _, err := exec.LookPath(p); err != nil {
		return "", fmt.Errorf("no moto server for the tests: run `make moto` (scripts/moto.sh), or set BURST_MOTO (%w)", err)
	}
	return p, nil
}

// Start starts a moto server for the test and waits until it answers. The
// server is stopped when the test ends; if the test failed, its log is
// printed first.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(Binary(t))
	if err != nil {
		t.Fatalf("testmoto: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("moto server log (%s):\n%s", s.Endpoint(), s.Log())
		}
		s.Stop()
	})
	return s
}

// New starts a moto server from the executable bin and waits until it
// answers, for callers without a testing.TB (a TestMain); the caller must
// Stop it.
func New(bin string) (*Server, error) {
	s := &Server{bin: bin}
	err := s.proc.StartOnFreePorts(1, func(addrs []string) error {
		s.endpoint = "http://" + addrs[0]
		return s.start(addrs[0])
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Endpoint returns the server's URL, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return s.endpoint }

// Stop stops the server: SIGTERM to its process group, then SIGKILL if it
// has not exited within a few seconds. It waits until the server is gone,
// and does nothing when it is not running. Safe to call more than once.
func (s *Server) Stop() { s.proc.Stop() }

// Log returns the tail of the server's output.
func (s *Server) Log() string { return s.proc.Log() }

// Client returns an EC2 client for the server, in Region, with the dummy
// static credentials; it reads no AWS config files and no environment
// variables. optFns adjust the client's options.
func (s *Server) Client(t testing.TB, optFns ...func(*ec2.Options)) *ec2.Client {
	t.Helper()
	return ec2.New(ec2.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.endpoint),
		Credentials: aws.NewCredentialsCache(
			credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")),
	}, optFns...)
}

// Reset empties the server (moto's POST /moto-api/reset): every instance,
// fleet, launch template, image and tag is forgotten, and the default VPC,
// subnets and public AMIs come back, for tests that share one server.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	if err := s.reset(); err != nil {
		t.Fatalf("testmoto: %v", err)
	}
}

func (s *Server) reset() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"/moto-api/reset", nil)
	if err != nil {
		return fmt.Errorf("resetting moto: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("resetting moto: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resetting moto: %s", resp.Status)
	}
	return nil
}

// Env returns environment variables that point an aws-sdk-go-v2 default
// config (config.LoadDefaultConfig) in a subprocess, such as the burst CLI, at
// the server for EC2 (and for the Price List API, which moto does not
// emulate: its calls fail there, at once, never reaching AWS), with dummy
// credentials, and keep it from reading any
// real AWS config, credentials or instance metadata. Append them to
// os.Environ(): later entries win. moto accepts any credentials, so when a
// subprocess also talks to MinIO, append testminio's Env after this one and
// its keys serve both.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_EC2=" + s.endpoint,
		"AWS_ENDPOINT_URL_PRICING=" + s.endpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// start launches the server on addr and waits until it answers. The caller
// stops it on error.
func (s *Server) start(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("starting moto: %w", err)
	}
	cmd := exec.Command(s.bin, "--host", host, "--port", port)
	cmd.Env = testserver.Environ([]string{"MOTO_", "AWS_", "TEST_SERVER_MODE="},
		// As on AWS, an unknown instance type is an error, not an instance.
		"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true",
		"PYTHONUNBUFFERED=1",
	)
	exited, err := s.proc.Start(cmd)
	if err != nil {
		return err
	}
	// A fresh server is empty: resetting it is a harmless call that answers
	// only once the server is fully up.
	if err := testserver.WaitReady(exited, readyTimeout, s.reset); err != nil {
		return fmt.Errorf("moto at %s: %w", s.endpoint, err)
	}
	return nil
}
