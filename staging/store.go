// Package staging holds a run's data on an object store: the Store
// interface and its implementations, the run layout, the manifest, task
// inputs and outputs, shared files stored by content hash, and result
// collection.
//
// There is no head node: the CLI, every worker and any later `burst status`
// coordinate only through the store, with conditional writes (see Store).
package staging

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors that Store methods return, to be tested with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create found the key already present (HTTP 412 on
	// If-None-Match: *).
	ErrExists = errors.New("already exists")
	// ErrChanged: Replace found a different version than the one named
	// (HTTP 412 on If-Match).
	ErrChanged = errors.New("changed since read")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	ETag string
	// Modified is when the object was last written, on the store's clock
	// (see Store.Now), possibly truncated to the second.
	Modified time.Time
}

// Store is a flat key-value object store with conditional writes, the
// only thing burst's processes share. Keys are slash-separated relative
// paths ("runs/abc/tasks/0001.pkl"); see ValidKey.
//
// Every method is safe for concurrent use, from several goroutines and
// several processes (or machines) at once. Writes are atomic: a reader sees
// the whole old object or the whole new one, never a mix.
type Store interface {
	// Get returns the object's bytes and its ETag, or ErrNotFound.
	Get(ctx context.Context, key string) (data []byte, etag string, err error)
	// Stat returns the object's metadata, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Put writes the object unconditionally and returns its new ETag.
	Put(ctx context.Context, key string, data []byte) (etag string, err error)
	// Create writes the object only if the key does not exist yet, and
	// returns ErrExists otherwise, leaving the existing object untouched.
	// Of many concurrent Creates of one key, exactly one succeeds.
	Create(ctx context.Context, key string, data []byte) (etag string, err error)
	// Replace writes the object only if its current ETag is etag. It
	// returns ErrChanged when the object was changed since, and ErrNotFound
	// when it does not exist. Of many concurrent Replaces naming the same
	// ETag, at most one succeeds.
	Replace(ctx context.Context, key string, data []byte, etag string) (newETag string, err error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted by key.
	// The prefix need not end at a slash.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// ListDirs returns the names of the immediate "subdirectories" under
	// prefix, which must be empty or end with a slash: for keys a/x/1 and
	// a/y/2, ListDirs("a/") returns ["x", "y"]. Sorted.
	ListDirs(ctx context.Context, prefix string) ([]string, error)
	// PutFile uploads a local file, streaming it: for large inputs.
	PutFile(ctx context.Context, key, path string) (etag string, err error)
	// GetFile downloads the object into a local file, atomically replacing
	// it, or returns ErrNotFound.
	GetFile(ctx context.Context, key, path string) error
	// Location names the store for people and for other processes:
	// a directory path or an s3:// URL.
	Location() string
	// Now returns the store's current time: the clock that stamps
	// ObjectInfo.Modified, which every machine sharing the store reads
	// alike, whatever its own clock says. Leases are judged by it (see
	// Lease). It may be estimated from recent answers (the Date of an
	// HTTP response, plus the time elapsed since on this machine's
	// monotonic clock), and may then lag the truth by up to a second, but
	// must never run ahead of it by more than ClockGrace.
	Now(ctx context.Context) (time.Time, error)
}

// ValidKey reports whether key can be stored: non-empty, relative,
// slash-separated, with no empty, "." or ".." segments, no segment starting
// with ".tmp-" (reserved for partial writes) and no NUL or backslash.
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid key: empty")
	}
	if len(key) > 1024 {
		return fmt.Errorf("invalid key %.40q...: longer than 1024 bytes", key)
	}
	if strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("invalid key %q: contains NUL or backslash", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "", seg == ".", seg == "..":
			return fmt.Errorf("invalid key %q: empty, . or .. segment", key)
		case strings.HasPrefix(seg, ".tmp-"), seg == lockName:
			return fmt.Errorf("invalid key %q: reserved name %q", key, seg)
		}
	}
	return nil
}
