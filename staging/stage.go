package staging

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slicerburst/burst/staging/pickle"
)

// Input is one task's id and pickled input.
type Input struct {
	ID     string
	Pickle []byte
}

// StageRequest describes a run to stage.
type StageRequest struct {
	ScriptPath  string
	Inputs      []Input
	SharedPaths []string
	Manifest    Manifest // Script, Tasks, Chunks, Shared, Protocol, ID and Created are filled in
	MinChunk    int
	// Progress, when set, is called after each uploaded input.
	Progress func(done, total int)
	Logger   *slog.Logger
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// NewRunID returns a fresh run id: the script's name, the time, and 64
// random bits ("offset-20261125-071530-3fa94c0e1b7d2a55"), so that two
// submits of one script in the same second do not collide (and if they
// ever did, Stage's claim of the run's prefix would refuse the second).
func NewRunID(script string, now time.Time) string {
	base := strings.TrimSuffix(filepath.Base(script), filepath.Ext(script))
	base = strings.Trim(unsafeChars.ReplaceAllString(base, "-"), "-._")
	if len(base) > 40 {
		base = base[:40]
	}
	if base == "" {
		base = "run"
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", base, now.UTC().Format("20060102-150405"), hex.EncodeToString(b[:]))
}

// ErrRunExists means a run with the requested id is already in the store
// (or being staged): Stage wrote nothing.
var ErrRunExists = errors.New("run id already taken")

// Stage writes a new run to the store. It first claims the run's prefix
// with a create-only owner object (runs/<id>/owner.json), so that of two
// submits with one id exactly one goes on and the other fails with
// ErrRunExists having written nothing; then it writes the script, the
// shared files (once, by content hash), the inputs, and last the manifest,
// which makes the run visible. If anything fails after the claim, Stage
// removes exactly the objects it wrote, and the owner object last; never
// another run's, and never shared files (content-addressed, they may
// serve other runs).
func Stage(ctx context.Context, s Store, req StageRequest) (run *Run, err error) {
	m := req.Manifest
	m.Protocol = Protocol
	if m.ID == "" {
		m.ID = NewRunID(req.ScriptPath, time.Now())
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	m.Script = filepath.Base(req.ScriptPath)
	m.Tasks = make([]string, len(req.Inputs))
	for i, in := range req.Inputs {
		m.Tasks[i] = in.ID
	}
	m.Chunks = PlanChunks(len(m.Tasks), m.Slots, req.MinChunk)
	run, err = OpenRun(s, m.ID)
	if err != nil {
		return nil, err
	}
	shared, err := hashShared(req.SharedPaths)
	if err != nil {
		return nil, err
	}
	m.Shared = shared
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("staging run: %w", err)
	}
	owner, _ := json.Marshal(map[string]any{"created": m.Created})
	if _, err := s.Create(ctx, run.OwnerKey(), owner); errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("run %s in %s: %w", m.ID, s.Location(), ErrRunExists)
	} else if err != nil {
		return nil, fmt.Errorf("claiming run id %s: %w", m.ID, err)
	}

	written := &keySet{}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if derr := deleteKeys(cctx, s, append(written.list(), run.OwnerKey())); derr != nil {
				err = fmt.Errorf("%w (and removing the partly staged run failed: %v; remove %s by hand)", err, derr, run.Location())
			}
		}
	}()

	written.add(run.ScriptKey(m.Script))
	if _, err := s.PutFile(ctx, run.ScriptKey(m.Script), req.ScriptPath); err != nil {
		return run, fmt.Errorf("uploading script: %w", err)
	}
	for i, f := range shared {
		if err := putShared(ctx, s, req.SharedPaths[i], f, req.Logger); err != nil {
			return run, err
		}
	}
	objs := make([]object, len(req.Inputs))
	for i, in := range req.Inputs {
		objs[i] = object{run.TaskKey(in.ID), in.Pickle}
	}
	if err := putAll(ctx, s, objs, req.Progress, written); err != nil {
		return run, fmt.Errorf("uploading inputs: %w", err)
	}
	if bundles, err := makeBundles(run, &m, req.Inputs); err != nil {
		return run, err
	} else if bundles != nil {
		if err := putAll(ctx, s, bundles, nil, written); err != nil {
			return run, fmt.Errorf("uploading input bundles: %w", err)
		}
		m.Bundles = true
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return run, fmt.Errorf("encoding manifest: %w", err)
	}
	written.add(run.ManifestKey())
	if _, err := s.Create(ctx, run.ManifestKey(), data); err != nil {
		return run, fmt.Errorf("writing manifest: %w", err)
	}
	return run, nil
}

// keySet records the keys a Stage call wrote (or may have written), for
// its cleanup.
type keySet struct {
	mu   sync.Mutex
	keys []string
}

func (k *keySet) add(key string) {
	k.mu.Lock()
	k.keys = append(k.keys, key)
	k.mu.Unlock()
}

func (k *keySet) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys)
}

// deleteKeys deletes keys in order, the manifest first if among them, so
// that a half-deleted run is not mistaken for one.
func deleteKeys(ctx context.Context, s Store, keys []string) error {
	if i := slices.IndexFunc(keys, func(k string) bool { return strings.HasSuffix(k, "/manifest.json") }); i > 0 {
		keys[0], keys[i] = keys[i], keys[0]
	}
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func hashShared(paths []string) ([]SharedFile, error) {
	var out []SharedFile
	seen := map[string]string{}
	for _, p := range paths {
		name := filepath.Base(p)
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("shared files %s and %s have the same name %q: scripts find them by name", prev, p, name)
		}
		seen[name] = p
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("shared file: %w", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading shared file %s: %w", p, err)
		}
		out = append(out, SharedFile{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n})
	}
	return out, nil
}

// putShared uploads a shared file unless the store has it already.
func putShared(ctx context.Context, s Store, path string, f SharedFile, log *slog.Logger) error {
	key := CASKey(f.SHA256)
	if info, err := s.Stat(ctx, key); err == nil && info.Size == f.Size {
		if log != nil {
			log.Info("shared file already stored", "name", f.Name, "sha256", f.SHA256)
		}
		return nil
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("checking shared file %s: %w", f.Name, err)
	}
	if log != nil {
		log.Info("uploading shared file", "name", f.Name, "sha256", f.SHA256, "bytes", f.Size)
	}
	if _, err := s.PutFile(ctx, key, path); err != nil {
		return fmt.Errorf("uploading shared file %s: %w", f.Name, err)
	}
	return nil
}

// uploadParallelism bounds concurrent input uploads.
const uploadParallelism = 16

// maxBundle bounds the inputs of one chunk stored as a bundle: a run whose
// chunks hold more has none, and workers read each input on its own.
const maxBundle = 8 << 20

type object struct {
	key  string
	data []byte
}

// makeBundles returns each chunk's inputs as one object, a pickled dict of
// task id to input pickle, or nil when some chunk holds more than
// maxBundle.
func makeBundles(run *Run, m *Manifest, inputs []Input) ([]object, error) {
	out := make([]object, len(m.Chunks))
	for i, c := range m.Chunks {
		d := pickle.NewDict()
		size := 0
		for _, in := range inputs[c.Start:c.End] {
			d.Set(in.ID, in.Pickle)
			size += len(in.Pickle)
		}
		if size > maxBundle {
			return nil, nil
		}
		data, err := pickle.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("bundling inputs of chunk %d: %w", i, err)
		}
		out[i] = object{run.BundleKey(i), data}
	}
	return out, nil
}

// ReadBundle returns the inputs of a chunk by task id, from its bundle.
func (r *Run) ReadBundle(ctx context.Context, chunk int) (map[string][]byte, error) {
	data, _, err := r.Store.Get(ctx, r.BundleKey(chunk))
	if err != nil {
		return nil, err
	}
	v, err := pickle.Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("reading input bundle of chunk %d: %w", chunk, err)
	}
	d, ok := v.(*pickle.Dict)
	if !ok {
		return nil, fmt.Errorf("input bundle of chunk %d holds a %s, not a dict", chunk, pickle.TypeName(v))
	}
	out := make(map[string][]byte, d.Len())
	for _, k := range d.Keys() {
		id, _ := k.(string)
		v, _ := d.Get(k)
		if b, ok := v.([]byte); ok && id != "" {
			out[id] = b
		}
	}
	return out, nil
}

// putAll writes objects, uploadParallelism at a time, calling progress
// after each and recording each key in written before writing it.
func putAll(ctx context.Context, s Store, objs []object, progress func(int, int), written *keySet) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan object)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i := 0; i < min(uploadParallelism, len(objs)); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range next {
				written.add(o.key)
				if _, err := s.Put(ctx, o.key, o.data); err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(objs))
				}
				mu.Unlock()
			}
		}()
	}
loop:
	for _, o := range objs {
		select {
		case next <- o:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// DeleteRun removes every object of a run.
func DeleteRun(ctx context.Context, run *Run) error {
	objs, err := run.Store.List(ctx, run.prefix())
	if err != nil {
		return err
	}
	// The manifest first, so a half-deleted run is not mistaken for one.
	for i, o := range objs {
		if o.Key == run.ManifestKey() {
			objs[0], objs[i] = objs[i], objs[0]
		}
	}
	for _, o := range objs {
		if err := run.Store.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}
