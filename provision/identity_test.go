package provision_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/slicerburst/burst/provision"
)

// flakyMetadata fails its first `fail` calls, then answers as an
// instance's metadata service.
type flakyMetadata struct {
	fail  int32
	calls atomic.Int32
}

func (m *flakyMetadata) GetMetadata(ctx context.Context, in *imds.GetMetadataInput, _ ...func(*imds.Options)) (*imds.GetMetadataOutput, error) {
	if m.calls.Add(1) <= m.fail {
		return nil, errors.New("connection refused")
	}
	body := map[string]string{
		"instance-id": "i-0abc", "instance-type": "c7i.large", "placement/availability-zone": "us-east-1a",
	}[in.Path]
	return &imds.GetMetadataOutput{Content: io.NopCloser(strings.NewReader(body))}, nil
}

// TestLookupInstance: a metadata service that does not answer yet is asked
// again until the wait is over, and no longer.
func TestLookupInstance(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	in, err := provision.LookupInstance(ctx, &flakyMetadata{fail: 1}, time.Minute, log)
	if err != nil || in.ID != "i-0abc" || in.Type != "c7i.large" || in.Zone != "us-east-1a" {
		t.Fatalf("after one failure: %+v, %v; want the instance", in, err)
	}

	down := &flakyMetadata{fail: 1 << 30}
	start := time.Now()
	if _, err := provision.LookupInstance(ctx, down, 0, log); err == nil {
		t.Fatal("a service that never answers gave an identity")
	}
	if n := down.calls.Load(); n != 1 || time.Since(start) > 30*time.Second {
		t.Errorf("with no wait: %d calls in %v, want 1 at once", n, time.Since(start))
	}

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := provision.LookupInstance(cctx, down, time.Hour, log); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while waiting: err = %v, want context.Canceled", err)
	}
}
