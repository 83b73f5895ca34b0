package staging_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/storetest"
)

// streamPair serves store over a pair of OS pipes, as an ssh session's
// stdin and stdout carry it, and returns the client and the server's
// result channel. Both ends are closed when the test ends.
func streamPair(t *testing.T, store staging.Store, sopts, copts staging.StreamOptions) (*staging.StreamClient, *staging.StreamServer, <-chan error) {
	t.Helper()
	up, upW, err := os.Pipe() // client -> server
	if err != nil {
		t.Fatal(err)
	}
	downR, down, err := os.Pipe() // server -> client
	if err != nil {
		t.Fatal(err)
	}
	srv := staging.NewStreamServer(store, sopts, t.TempDir(), nil)
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(context.Background(), up, down, func() { up.Close(); down.Close() })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := staging.NewStreamClient(ctx, downR, upW, copts, func() { downR.Close(); upW.Close() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Error("the server did not end after the client closed")
		}
	})
	return c, srv, served
}

func newFS(t *testing.T) *staging.FSStore {
	t.Helper()
	s, err := staging.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The stream store behaves as every Store must: the conformance suite over
// real pipes, against a filesystem store at the other end.
func TestStreamStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) staging.Store {
		c, _, _ := streamPair(t, newFS(t), staging.StreamOptions{}, staging.StreamOptions{})
		return c
	})
}

// A large transfer does not hold up small calls: while a 40 MiB object
// goes through, a Stat returns long before it.
func TestStreamMultiplexes(t *testing.T) {
	fs := newFS(t)
	c, _, _ := streamPair(t, fs, staging.StreamOptions{}, staging.StreamOptions{})
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<16)
	if _, err := fs.Put(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Put(ctx, "small", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var got []byte
	var bigErr error
	go func() {
		defer wg.Done()
		got, _, bigErr = c.Get(ctx, "big")
	}()
	for range 20 {
		if _, err := c.Stat(ctx, "small"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if bigErr != nil || !bytes.Equal(got, big) {
		t.Fatalf("big Get: %v (len %d)", bigErr, len(got))
	}
}

// A call whose context ends returns at once, and the stream stays usable.
func TestStreamCancelledCall(t *testing.T) {
	slow := &stallStore{Store: newFS(t), stall: make(chan struct{})}
	c, _, _ := streamPair(t, slow, staging.StreamOptions{}, staging.StreamOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Put(ctx, "stalled/x", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled Put: %v, want DeadlineExceeded", err)
	}
	if _, err := c.Put(context.Background(), "fine/x", []byte("x")); err != nil {
		t.Fatalf("Put after a cancelled call: %v", err)
	}
	close(slow.stall)
}

// stallStore blocks Puts under stalled/ until stall is closed or the
// call's context ends.
type stallStore struct {
	staging.Store
	stall chan struct{}
}

func (s *stallStore) Put(ctx context.Context, key string, data []byte) (string, error) {
	if len(key) > 8 && key[:8] == "stalled/" {
		select {
		case <-s.stall:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return s.Store.Put(ctx, key, data)
}

// When the server goes away, calls in flight and later calls fail with
// ErrStreamClosed, and Done is closed.
func TestStreamServerGone(t *testing.T) {
	up, upW, _ := os.Pipe()
	downR, down, _ := os.Pipe()
	srv := staging.NewStreamServer(&stallStore{Store: newFS(t), stall: make(chan struct{})}, staging.StreamOptions{}, t.TempDir(), nil)
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, up, down, func() { up.Close(); down.Close() }) }()
	c, err := staging.NewStreamClient(context.Background(), downR, upW, staging.StreamOptions{}, func() { downR.Close(); upW.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inflight := make(chan error, 1)
	go func() {
		_, err := c.Put(context.Background(), "stalled/x", []byte("x"))
		inflight <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the Put reach the server; either way it must fail
	stop()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v, want context.Canceled", err)
	}
	if err := <-inflight; !errors.Is(err, staging.ErrStreamClosed) {
		t.Errorf("call in flight: %v, want ErrStreamClosed", err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed")
	}
	if _, _, err := c.Get(context.Background(), "a"); !errors.Is(err, staging.ErrStreamClosed) {
		t.Errorf("later call: %v, want ErrStreamClosed", err)
	}
}

// A side that hears nothing for DeadAfter gives the stream up: a server
// whose client stalls (a network gone without a FIN) ends.
func TestStreamSilenceEndsIt(t *testing.T) {
	up, upW, _ := os.Pipe()
	downR, down, _ := os.Pipe()
	defer upW.Close()
	defer downR.Close()
	srv := staging.NewStreamServer(newFS(t), staging.StreamOptions{PingEvery: 20 * time.Millisecond, DeadAfter: 300 * time.Millisecond}, t.TempDir(), nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), up, down, func() { up.Close(); down.Close() }) }()
	// A client that opens the stream and then says nothing more.
	if _, err := upW.Write(append([]byte("\x00burst-store-stream\x00v"), 1)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = downR.Read(make([]byte, 1<<20)) }()
	select {
	case err := <-served:
		if !errors.Is(err, staging.ErrStreamClosed) {
			t.Errorf("Serve: %v, want ErrStreamClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a silent client kept the server going")
	}
}

// What a remote shell prints before the worker starts is skipped; a
// stream that never opens says what came instead.
func TestStreamPreamble(t *testing.T) {
	up, upW, _ := os.Pipe()
	downR, down, _ := os.Pipe()
	defer downR.Close()
	srv := staging.NewStreamServer(newFS(t), staging.StreamOptions{}, t.TempDir(), nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), up, down, func() { up.Close(); down.Close() }) }()
	upW.Write([]byte("Welcome to the lab server\nburst: command not found\n"))
	upW.Close()
	err := <-served
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("Welcome to the lab server")) {
		t.Fatalf("Serve: %v, want an error quoting what came", err)
	}
}

// Notifications go both ways, in order.
func TestStreamNotify(t *testing.T) {
	var mu sync.Mutex
	var atServer []string
	toClient := make(chan string, 1)
	c, srv, _ := streamPair(t, newFS(t),
		staging.StreamOptions{OnNotify: func(p []byte) { mu.Lock(); atServer = append(atServer, string(p)); mu.Unlock() }},
		staging.StreamOptions{OnNotify: func(p []byte) { toClient <- string(p) }})
	ctx := context.Background()
	for _, m := range []string{"one", "two", "three"} {
		if err := c.Notify(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// A call after the notifications returns after they were delivered.
	if _, err := c.List(ctx, "x/"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got := filepath.Join(atServer...); got != "one/two/three" {
		t.Errorf("server got %q", got)
	}
	mu.Unlock()
	if err := srv.Notify(ctx, []byte("stop")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-toClient:
		if m != "stop" {
			t.Errorf("client got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification at the client")
	}
}

// clockStore is a store whose clock runs an hour ahead of this machine's.
type clockStore struct{ staging.Store }

func (clockStore) Now(ctx context.Context) (time.Time, error) { return time.Now().Add(time.Hour), nil }

// The stream tells the served store's time, not the client machine's.
func TestStreamNowIsTheStoresClock(t *testing.T) {
	c, _, _ := streamPair(t, clockStore{newFS(t)}, staging.StreamOptions{}, staging.StreamOptions{})
	now, err := c.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(now); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("Now is %s from here, want the store's hour ahead", d)
	}
}
