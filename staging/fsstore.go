package staging

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lockName is the lock file at the root of a filesystem store.
const lockName = ".burst-lock"

// FSStore is a Store in a local directory, shared safely by any number of
// processes on this machine.
//
// Every write goes to a temporary file beside its target first; the final
// step is a rename (Put, Replace) or a hard link (Create, which fails when the
// target exists), taken under an exclusive flock on the store's lock file so
// that a compare-and-swap cannot interleave with another writer. Readers take
// no lock: renames are atomic. ETags are content hashes, as with S3, so a
// version cannot be mistaken for an older one that reused its inode.
//
// Files are not fsynced: a process killed at any point leaves every object
// whole, but a power cut may lose the last writes.
type FSStore struct {
	root string
	mu   sync.Mutex // serializes this process's writers; flock serializes processes
	lock *os.File
}

// OpenFS opens (creating it if needed) the store rooted at dir.
func OpenFS(dir string) (*FSStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(abs, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening store lock: %w", err)
	}
	return &FSStore{root: abs, lock: lock}, nil
}

// Close releases the store's lock file.
func (s *FSStore) Close() error { return s.lock.Close() }

// Now returns this machine's time: the store's files are stamped by its
// clock.
func (s *FSStore) Now(ctx context.Context) (time.Time, error) { return time.Now(), ctx.Err() }

// Location returns the store's directory.
func (s *FSStore) Location() string { return s.root }

func (s *FSStore) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// locked runs fn holding both the in-process mutex and the cross-process flock.
func (s *FSStore) locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("locking store: %w", err)
		}
	}
	defer syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
	return fn()
}

func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

func (s *FSStore) Get(ctx context.Context, key string) ([]byte, string, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, "", notFound(key, err)
	}
	return data, etagOf(data), nil
}

func (s *FSStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return ObjectInfo{}, notFound(key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ETag: hex.EncodeToString(h.Sum(nil)[:16]), Modified: fi.ModTime()}, nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", key, err)
}

// writeTemp writes data beside p and returns the temporary file's path.
func writeTemp(p string, r io.Reader) (string, error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func (s *FSStore) Put(ctx context.Context, key string, data []byte) (string, error) {
	if err := s.put(ctx, key, bytes.NewReader(data)); err != nil {
		return "", err
	}
	return etagOf(data), nil
}

func (s *FSStore) put(ctx context.Context, key string, r io.Reader) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := writeTemp(p, r)
	if err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	err = s.locked(func() error { return os.Rename(tmp, p) })
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func (s *FSStore) Create(ctx context.Context, key string, data []byte) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	tmp, err := writeTemp(p, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", key, err)
	}
	defer os.Remove(tmp)
	err = s.locked(func() error { return os.Link(tmp, p) })
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("creating %s: %w", key, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", key, err)
	}
	return etagOf(data), nil
}

func (s *FSStore) Replace(ctx context.Context, key string, data []byte, etag string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	tmp, err := writeTemp(p, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("replacing %s: %w", key, err)
	}
	err = s.locked(func() error {
		cur, err := os.ReadFile(p)
		if err != nil {
			return notFound(key, err)
		}
		if etagOf(cur) != etag {
			return fmt.Errorf("replacing %s: %w", key, ErrChanged)
		}
		return os.Rename(tmp, p)
	})
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return etagOf(data), nil
}

func (s *FSStore) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = s.locked(func() error { return os.Remove(p) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

func (s *FSStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk the deepest directory that contains every match.
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	start := filepath.Join(s.root, filepath.FromSlash(dir))
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(name, ".tmp-") || name == lockName {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while we walked
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *FSStore) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("listing %s: prefix must end with a slash", prefix)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(prefix)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (s *FSStore) PutFile(ctx context.Context, key, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("uploading %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if err := s.put(ctx, key, io.TeeReader(f, h)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

func (s *FSStore) GetFile(ctx context.Context, key, path string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return notFound(key, err)
	}
	defer src.Close()
	tmp, err := writeTemp(path, src)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("downloading %s: %w", key, err)
	}
	return nil
}
