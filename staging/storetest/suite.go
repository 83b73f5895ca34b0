// Package storetest is the conformance suite every staging.Store
// implementation must pass: the same tests, run against the filesystem store
// and against a real S3 server, so that the lease protocol built on them
// behaves the same everywhere.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slicerburst/burst/staging"
)

// Run runs the suite. newStore returns an empty store for each subtest; it
// registers its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) staging.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s staging.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"CreateOnce", testCreateOnce},
		{"Replace", testReplace},
		{"Delete", testDelete},
		{"List", testList},
		{"ListDirs", testListDirs},
		{"Files", testFiles},
		{"InvalidKeys", testInvalidKeys},
		{"CreateRace", testCreateRace},
		{"ReplaceRace", testReplaceRace},
		{"Cancelled", testCancelled},
		{"Clock", testClock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func mustPut(t *testing.T, s staging.Store, key, val string) string {
	t.Helper()
	etag, err := s.Put(context.Background(), key, []byte(val))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if etag == "" {
		t.Fatalf("Put(%q) returned an empty ETag", key)
	}
	return etag
}

func mustGet(t *testing.T, s staging.Store, key string) (string, string) {
	t.Helper()
	data, etag, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(data), etag
}

func testGetMissing(t *testing.T, s staging.Store) {
	ctx := context.Background()
	if _, _, err := s.Get(ctx, "runs/x/nothing.json"); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("Get missing: got %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "runs/x/nothing.json"); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("Stat missing: got %v, want ErrNotFound", err)
	}
	if err := s.GetFile(ctx, "runs/x/nothing.json", filepath.Join(t.TempDir(), "f")); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("GetFile missing: got %v, want ErrNotFound", err)
	}
	// A key that is a "directory" of other keys is not an object.
	mustPut(t, s, "runs/x/dir/a", "1")
	if _, _, err := s.Get(ctx, "runs/x/dir"); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("Get of a prefix: got %v, want ErrNotFound", err)
	}
}

func testPutGet(t *testing.T, s staging.Store) {
	ctx := context.Background()
	e1 := mustPut(t, s, "a/b.json", "first")
	got, etag := mustGet(t, s, "a/b.json")
	if got != "first" || etag != e1 {
		t.Fatalf("Get = %q, %q; want %q, %q", got, etag, "first", e1)
	}
	e2 := mustPut(t, s, "a/b.json", "second, longer")
	if e2 == e1 {
		t.Errorf("overwrite kept ETag %q", e1)
	}
	if got, _ := mustGet(t, s, "a/b.json"); got != "second, longer" {
		t.Errorf("after overwrite Get = %q", got)
	}
	info, err := s.Stat(ctx, "a/b.json")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len("second, longer")) || info.ETag != e2 || info.Key != "a/b.json" {
		t.Errorf("Stat = %+v, want size %d etag %s", info, len("second, longer"), e2)
	}
	// Empty objects and unusual names are objects like any other.
	mustPut(t, s, "a/empty", "")
	if got, _ := mustGet(t, s, "a/empty"); got != "" {
		t.Errorf("empty object read back as %q", got)
	}
	odd := "a/with space/ünïcode+plus=eq.pkl"
	mustPut(t, s, odd, "odd")
	if got, _ := mustGet(t, s, odd); got != "odd" {
		t.Errorf("Get(%q) = %q", odd, got)
	}
}

func testCreateOnce(t *testing.T, s staging.Store) {
	ctx := context.Background()
	etag, err := s.Create(ctx, "r/result.pkl", []byte("original"))
	if err != nil || etag == "" {
		t.Fatalf("first Create: %q, %v", etag, err)
	}
	if _, err := s.Create(ctx, "r/result.pkl", []byte("duplicate")); !errors.Is(err, staging.ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}
	if got, e := mustGet(t, s, "r/result.pkl"); got != "original" || e != etag {
		t.Errorf("after refused Create: %q %q, want original %q", got, e, etag)
	}
}

func testReplace(t *testing.T, s staging.Store) {
	ctx := context.Background()
	if _, err := s.Replace(ctx, "l/lease", []byte("x"), "whatever"); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("Replace missing: got %v, want ErrNotFound", err)
	}
	e1, err := s.Create(ctx, "l/lease", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.Replace(ctx, "l/lease", []byte("v2"), e1)
	if err != nil {
		t.Fatalf("Replace with current ETag: %v", err)
	}
	if e2 == e1 || e2 == "" {
		t.Errorf("Replace returned ETag %q (old %q)", e2, e1)
	}
	if _, err := s.Replace(ctx, "l/lease", []byte("v3"), e1); !errors.Is(err, staging.ErrChanged) {
		t.Errorf("Replace with stale ETag: got %v, want ErrChanged", err)
	}
	if got, e := mustGet(t, s, "l/lease"); got != "v2" || e != e2 {
		t.Errorf("after refused Replace: %q %q, want v2 %q", got, e, e2)
	}
	// Writing back old content must not revive an old ETag's right to write
	// unless the content is identical (ETags name content, as in S3).
	e3, err := s.Replace(ctx, "l/lease", []byte("v3"), e2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace(ctx, "l/lease", []byte("v4"), e2); !errors.Is(err, staging.ErrChanged) {
		t.Errorf("Replace with the ETag of two versions ago: got %v, want ErrChanged", err)
	}
	if _, err := s.Replace(ctx, "l/lease", []byte("v4"), e3); err != nil {
		t.Errorf("Replace after a refused one: %v", err)
	}
}

func testDelete(t *testing.T, s staging.Store) {
	ctx := context.Background()
	mustPut(t, s, "d/x", "1")
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "d/x"); !errors.Is(err, staging.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	if _, err := s.Create(ctx, "d/x", []byte("again")); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
}

func keysOf(infos []staging.ObjectInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func testList(t *testing.T, s staging.Store) {
	ctx := context.Background()
	for _, k := range []string{"runs/b/status/0002.json", "runs/b/status/0001.json", "runs/b/status/0010.json", "runs/b/results/0001.pkl", "runs/bb/status/0001.json", "cas/x"} {
		mustPut(t, s, k, k)
	}
	infos, err := s.List(ctx, "runs/b/status/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"runs/b/status/0001.json", "runs/b/status/0002.json", "runs/b/status/0010.json"}
	if got := keysOf(infos); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List(status/) = %v, want %v", got, want)
	}
	for _, i := range infos {
		if i.Size != int64(len(i.Key)) {
			t.Errorf("List size of %s = %d, want %d", i.Key, i.Size, len(i.Key))
		}
	}
	// A prefix that stops inside a name matches like S3's.
	infos, err = s.List(ctx, "runs/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 5 {
		t.Errorf("List(runs/b) = %v, want 5 keys (runs/b/... and runs/bb/...)", keysOf(infos))
	}
	infos, err = s.List(ctx, "runs/b/status/001")
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(infos); fmt.Sprint(got) != "[runs/b/status/0010.json]" {
		t.Errorf("List(status/001) = %v", got)
	}
	if infos, err := s.List(ctx, "nothing/here/"); err != nil || len(infos) != 0 {
		t.Errorf("List of an empty prefix = %v, %v; want nothing, nil", keysOf(infos), err)
	}
}

func testListDirs(t *testing.T, s staging.Store) {
	ctx := context.Background()
	for _, k := range []string{"runs/r2/manifest.json", "runs/r1/manifest.json", "runs/r1/tasks/0.pkl", "runs/loose-file"} {
		mustPut(t, s, k, "x")
	}
	dirs, err := s.ListDirs(ctx, "runs/")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dirs) != "[r1 r2]" {
		t.Errorf("ListDirs(runs/) = %v, want [r1 r2]", dirs)
	}
	if dirs, err := s.ListDirs(ctx, "none/"); err != nil || len(dirs) != 0 {
		t.Errorf("ListDirs(none/) = %v, %v", dirs, err)
	}
}

func testFiles(t *testing.T, s staging.Store) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "volume.nrrd")
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	data[12345] = 'X'
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	etag, err := s.PutFile(ctx, "cas/sha256/vol", src)
	if err != nil || etag == "" {
		t.Fatalf("PutFile: %q %v", etag, err)
	}
	info, err := s.Stat(ctx, "cas/sha256/vol")
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat after PutFile: %+v, %v", info, err)
	}
	dst := filepath.Join(dir, "sub", "copy.nrrd")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.GetFile(ctx, "cas/sha256/vol", dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetFile content differs (len %d vs %d, err %v)", len(got), len(data), err)
	}
	small, _, err := s.Get(ctx, "cas/sha256/vol")
	if err != nil || !bytes.Equal(small, data) {
		t.Fatalf("Get of a PutFile object differs: %v", err)
	}
}

func testInvalidKeys(t *testing.T, s staging.Store) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "a//b", "a/../b", "../x", "a/./b", "a/", ".tmp-x", "a\\b"} {
		if _, err := s.Put(ctx, k, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
		}
		if _, _, err := s.Get(ctx, k); err == nil || errors.Is(err, staging.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want an invalid-key error", k, err)
		}
	}
}

// testCreateRace: many writers create one key at once; exactly one wins and
// its content is what is stored.
func testCreateRace(t *testing.T, s staging.Store) {
	ctx := context.Background()
	const n = 24
	var wg sync.WaitGroup
	wins := make(chan int, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Create(ctx, "race/lease", []byte(fmt.Sprintf("writer-%d", i)))
			switch {
			case err == nil:
				wins <- i
			case !errors.Is(err, staging.ErrExists):
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Errorf("Create: unexpected error %v", err)
	}
	var winners []int
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers won the Create race, want exactly 1: %v", len(winners), winners)
	}
	if got, _ := mustGet(t, s, "race/lease"); got != fmt.Sprintf("writer-%d", winners[0]) {
		t.Errorf("stored %q, but writer-%d won", got, winners[0])
	}
}

// testReplaceRace: many writers replace the same version at once; exactly
// one wins.
func testReplaceRace(t *testing.T, s staging.Store) {
	ctx := context.Background()
	etag := mustPut(t, s, "race/cas", "start")
	const n = 24
	var wg sync.WaitGroup
	wins := make(chan int, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Replace(ctx, "race/cas", []byte(fmt.Sprintf("taker-%d", i)), etag)
			switch {
			case err == nil:
				wins <- i
			case !errors.Is(err, staging.ErrChanged):
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Errorf("Replace: unexpected error %v", err)
	}
	var winners []int
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers won the Replace race, want exactly 1: %v", len(winners), winners)
	}
	if got, _ := mustGet(t, s, "race/cas"); got != fmt.Sprintf("taker-%d", winners[0]) {
		t.Errorf("stored %q, but taker-%d won", got, winners[0])
	}
}

func testCancelled(t *testing.T, s staging.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "c/x", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	if _, _, err := s.Get(ctx, "c/x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled", err)
	}
}

// testClock: objects are stamped on the store's clock, which Now reads:
// a write's Modified lies between Now before it and Now after it, give or
// take the stamps' resolution (ClockGrace).
func testClock(t *testing.T, s staging.Store) {
	ctx := context.Background()
	before, err := s.Now(ctx)
	if err != nil {
		t.Fatalf("Now: %v", err)
	}
	mustPut(t, s, "runs/x/clock/a", "1")
	after, err := s.Now(ctx)
	if err != nil {
		t.Fatalf("Now: %v", err)
	}
	if after.Before(before) {
		t.Errorf("the store's clock went back from %s to %s", before, after)
	}
	info, err := s.Stat(ctx, "runs/x/clock/a")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "runs/x/clock/")
	if err != nil || len(infos) != 1 {
		t.Fatalf("List: %v, %v", infos, err)
	}
	for what, m := range map[string]time.Time{"Stat": info.Modified, "List": infos[0].Modified} {
		if m.Before(before.Add(-staging.ClockGrace)) || m.After(after.Add(staging.ClockGrace)) {
			t.Errorf("%s: modified %s, outside [%s, %s] of the store's clock", what, m, before, after)
		}
	}
}
