package staging_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

func stageReq(t *testing.T, id string, n int) staging.StageRequest {
	t.Helper()
	script := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(script, []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := make([]staging.Input, n)
	for i := range in {
		in[i] = staging.Input{ID: fmt.Sprintf("t%03d", i), Pickle: []byte{0x80, 0x04, 0x7d, 0x94, 0x2e}} // {}
	}
	return staging.StageRequest{ScriptPath: script, Inputs: in,
		Manifest: staging.Manifest{ID: id, LeaseTTL: staging.Duration(30 * time.Second), Slots: 2}}
}

// Invariant: of two submits that happen to pick one run id, exactly one
// stages the run and the other fails having deleted nothing of it.
func TestStageCollisionKeepsTheWinner(t *testing.T) {
	ctx := context.Background()
	s, err := staging.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for round := 0; round < 3; round++ {
		id := fmt.Sprintf("job-20261202-120000-%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = staging.Stage(ctx, s, stageReq(t, id, 50))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, staging.ErrRunExists):
				t.Fatalf("losing submit: %v, want ErrRunExists", err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d submits won, want 1 (%v)", round, won, errs)
		}
		run, _ := staging.OpenRun(s, id)
		man, err := run.Manifest(ctx)
		if err != nil {
			t.Fatalf("the winner's run is damaged: %v", err)
		}
		for _, task := range man.Tasks {
			if _, err := s.Stat(ctx, run.TaskKey(task)); err != nil {
				t.Fatalf("the winner's input %s: %v", task, err)
			}
		}
		if _, err := s.Stat(ctx, run.ScriptKey(man.Script)); err != nil {
			t.Fatalf("the winner's script: %v", err)
		}
	}
}

// failingPuts fails every Put after the first n.
type failingPuts struct {
	staging.Store
	n atomic.Int64
}

func (f *failingPuts) Put(ctx context.Context, key string, data []byte) (string, error) {
	if f.n.Add(-1) < 0 {
		return "", errors.New("disk full")
	}
	return f.Store.Put(ctx, key, data)
}

// Invariant: a submit that fails part-way removes what it wrote, and only
// that: another run under the same store stays whole.
func TestStageFailureRemovesOnlyItsOwn(t *testing.T) {
	ctx := context.Background()
	fs, err := staging.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	other, err := staging.Stage(ctx, fs, stageReq(t, "other", 5))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := fs.List(ctx, "runs/other/")
	s := &failingPuts{Store: fs}
	s.n.Store(20)
	if _, err := staging.Stage(ctx, s, stageReq(t, "failing", 100)); err == nil {
		t.Fatal("staging with a failing store succeeded")
	}
	if left, _ := fs.List(ctx, "runs/failing/"); len(left) != 0 {
		t.Errorf("the failed submit left %d objects, first %s", len(left), left[0].Key)
	}
	after, _ := fs.List(ctx, "runs/other/")
	if len(after) != len(before) {
		t.Errorf("the other run went from %d objects to %d", len(before), len(after))
	}
	if _, err := other.Manifest(ctx); err != nil {
		t.Errorf("the other run: %v", err)
	}
	// The id is free again.
	if _, err := staging.Stage(ctx, fs, stageReq(t, "failing", 10)); err != nil {
		t.Errorf("staging again under the freed id: %v", err)
	}
}
