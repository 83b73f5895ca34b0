package staging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Protocol is the version of the run layout and lease protocol. A worker
// refuses a run whose manifest names another version. Version 2: one
// commit point per task (results and logs named by execution), leases
// judged by the store's clock.
const Protocol = 2

// ProtocolError is the error of a run staged by a burst that speaks
// another protocol version (see Manifest.Validate).
type ProtocolError struct {
	Run      string
	Protocol int // the run's
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("run %s was staged by a burst with protocol %d; this burst speaks %d: use a matching burst build", e.Run, e.Protocol, Protocol)
}

// Manifest is a run's specification, written once when the run is staged:
// runs/<id>/manifest.json.
type Manifest struct {
	Protocol int       `json:"protocol"`
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	// Script is the script's file name; it is stored at script/<Script>.
	Script string `json:"script"`
	// Python is the interpreter the submitter asked for, as given or
	// resolved on the submitting machine. Workers elsewhere may override it.
	Python string `json:"python,omitempty"`
	// Source says where the inputs came from, for people ("sweep spec
	// sweep.yaml", "inputs dir ./cases").
	Source string `json:"source,omitempty"`
	// Tasks lists the task ids in order; chunks index into it.
	Tasks  []string `json:"tasks"`
	Chunks []Chunk  `json:"chunks"`
	// Timeout is the limit on one attempt of one task; 0 means none.
	Timeout Duration `json:"timeout,omitempty"`
	// Retries is how many times a failed attempt is retried.
	Retries int `json:"retries"`
	// LeaseTTL is how long a chunk's lease lasts without renewal.
	LeaseTTL Duration `json:"lease_ttl"`
	// MaxLost is how many times a task's worker may be lost (killed, out
	// of memory, its machine gone) while the task runs before the task is
	// failed rather than run again; 0 means DefaultMaxLost.
	MaxLost int `json:"max_lost,omitempty"`
	// Slots is the number of slots the submitter planned for, used to
	// spread workers' first claims.
	Slots int `json:"slots"`
	// Shared lists files given with --shared, stored under cas/sha256/.
	Shared []SharedFile `json:"shared,omitempty"`
	// Bundles says that each chunk's inputs are also stored together, at
	// bundles/<chunk>.pkl (see ReadBundle), so that a worker reads them
	// with one request.
	Bundles bool `json:"bundles,omitempty"`
	// Warm runs tasks on warm workers: a task server per slot imports the
	// script's modules once and forks a child per task. Every worker of
	// the run does as its manifest says.
	Warm bool `json:"warm,omitempty"`
	// Preload is what a warm run's servers import: "" for the modules the
	// script imports at its top level, "none", or module names separated
	// by commas.
	Preload string `json:"preload,omitempty"`
	// OutDir is where the submitting machine collects results, a hint for
	// `burst resume` and `burst results` there.
	OutDir string `json:"out_dir,omitempty"`
}

// DefaultMaxLost is the default of Manifest.MaxLost.
const DefaultMaxLost = 3

// SharedFile is one file shared by every task of a run, stored once by
// content hash.
type SharedFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Chunk is the half-open range [Start, End) of a manifest's task list,
// claimed as one lease.
type Chunk struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Len returns the number of tasks in the chunk.
func (c Chunk) Len() int { return c.End - c.Start }

// Duration is a time.Duration written in JSON as seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Seconds())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a number of seconds: %w", err)
	}
	if s < 0 || s > 1e9 {
		return fmt.Errorf("duration %v seconds out of range", s)
	}
	*d = Duration(s * float64(time.Second))
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// PlanChunks splits n tasks into chunks for guided self-scheduling over
// slots workers: each chunk takes half of an equal share of what remains,
// so early chunks are large (few claims) and the last ones single tasks (no
// slot waits long on one chunk at the end). minSize bounds chunks from below
// except for the last ones.
func PlanChunks(n, slots, minSize int) []Chunk {
	if slots < 1 {
		slots = 1
	}
	if minSize < 1 {
		minSize = 1
	}
	var out []Chunk
	for start := 0; start < n; {
		rem := n - start
		size := (rem + 2*slots - 1) / (2 * slots)
		size = max(size, minSize)
		size = min(size, rem)
		out = append(out, Chunk{start, start + size})
		start += size
	}
	return out
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID reports whether s can name a run or a task: letters, digits,
// '.', '_' and '-', starting with a letter or digit, at most 128 bytes.
func ValidID(s string) bool { return idRe.MatchString(s) }

// Validate checks a manifest read from a store, which may come from another
// version of burst or have been edited by hand.
func (m *Manifest) Validate() error {
	if m.Protocol != Protocol {
		return &ProtocolError{Run: m.ID, Protocol: m.Protocol}
	}
	if !ValidID(m.ID) {
		return fmt.Errorf("invalid run id %q", m.ID)
	}
	if m.Script == "" || strings.Contains(m.Script, "/") {
		return fmt.Errorf("invalid script name %q", m.Script)
	}
	if len(m.Tasks) == 0 {
		return errors.New("run has no tasks")
	}
	seen := make(map[string]bool, len(m.Tasks))
	for _, id := range m.Tasks {
		if !ValidID(id) {
			return fmt.Errorf("invalid task id %q", id)
		}
		if seen[id] {
			return fmt.Errorf("duplicate task id %q", id)
		}
		seen[id] = true
	}
	next := 0
	for i, c := range m.Chunks {
		if c.Start != next || c.End <= c.Start || c.End > len(m.Tasks) {
			return fmt.Errorf("chunk %d [%d,%d) does not continue the task list", i, c.Start, c.End)
		}
		next = c.End
	}
	if next != len(m.Tasks) {
		return fmt.Errorf("chunks cover %d of %d tasks", next, len(m.Tasks))
	}
	if m.MaxLost < 0 {
		return fmt.Errorf("invalid max lost %d", m.MaxLost)
	}
	if m.Retries < 0 || m.LeaseTTL <= 0 {
		return fmt.Errorf("invalid retries %d or lease ttl %v", m.Retries, m.LeaseTTL.D())
	}
	for _, f := range m.Shared {
		if f.Name == "" || strings.ContainsAny(f.Name, "/\\") || f.Name == "." || f.Name == ".." || len(f.SHA256) != 64 {
			return fmt.Errorf("invalid shared file %q", f.Name)
		}
	}
	return nil
}

// Run is one run's data in a store: the layout of runs/<id>/.
type Run struct {
	Store Store
	ID    string
	// statuses caches the statuses read: they are written once.
	statuses sync.Map // task id -> *Status
}

// OpenRun returns the run id in store s (it need not exist yet).
func OpenRun(s Store, id string) (*Run, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("invalid run id %q", id)
	}
	return &Run{Store: s, ID: id}, nil
}

func (r *Run) prefix() string { return "runs/" + r.ID + "/" }

// Keys of the run's objects.
func (r *Run) ManifestKey() string          { return r.prefix() + "manifest.json" }
func (r *Run) OwnerKey() string             { return r.prefix() + "owner.json" }
func (r *Run) ScriptKey(name string) string { return r.prefix() + "script/" + name }
func (r *Run) TaskKey(task string) string   { return r.prefix() + "tasks/" + task + ".pkl" }
func (r *Run) LeaseKey(chunk int) string    { return fmt.Sprintf("%sleases/%06d", r.prefix(), chunk) }

// ResultKey is where execution exec of task writes its output; the
// task's status names the execution whose output counts.
func (r *Run) ResultKey(task, exec string) string {
	return r.prefix() + "results/" + task + "." + exec + ".pkl"
}
func (r *Run) StatusKey(task string) string  { return r.prefix() + "status/" + task + ".json" }
func (r *Run) WorkerKey(id string) string    { return r.prefix() + "workers/" + id + ".json" }
func (r *Run) ControlKey(name string) string { return r.prefix() + "control/" + name }
func (r *Run) BundleKey(chunk int) string {
	return fmt.Sprintf("%sbundles/%06d.pkl", r.prefix(), chunk)
}

// LogKey is where execution exec of task stores the full stderr of one
// attempt.
func (r *Run) LogKey(task, exec string, attempt int) string {
	return fmt.Sprintf("%slogs/%s/%s.%d.log", r.prefix(), task, exec, attempt)
}

// CASKey is where a shared file with this SHA-256 is stored, across runs.
func CASKey(sha string) string { return "cas/sha256/" + sha }

// Location names the run for people and for `burst worker`.
func (r *Run) Location() string {
	loc := r.Store.Location()
	if strings.HasPrefix(loc, "s3://") {
		return strings.TrimSuffix(loc, "/") + "/runs/" + r.ID
	}
	return loc + "/runs/" + r.ID
}

// ErrNoRun means the run's manifest is not in the store.
// Manifest's other errors are ErrBadManifest's or the store's.
var ErrNoRun = errors.New("no such run")

// Manifest reads and validates the run's manifest.
func (r *Run) Manifest(ctx context.Context) (*Manifest, error) {
	data, _, err := r.Store.Get(ctx, r.ManifestKey())
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("run %s in %s: %w", r.ID, r.Store.Location(), ErrNoRun)
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, badManifest{fmt.Errorf("reading manifest of run %s: %w", r.ID, err)}
	}
	if err := m.Validate(); err != nil {
		return nil, badManifest{fmt.Errorf("manifest of run %s: %w", r.ID, err)}
	}
	return &m, nil
}

// ErrBadManifest marks the error of a manifest that was read but cannot
// be used (not JSON, invalid, another protocol version): reading it again
// will not help.
var ErrBadManifest = errors.New("bad manifest")

type badManifest struct{ err error }

func (e badManifest) Error() string   { return e.err.Error() }
func (e badManifest) Unwrap() []error { return []error{ErrBadManifest, e.err} }

// Status is the final record of one task, runs/<id>/status/<task>.json,
// and its commit point: several executions of one task may overlap (a
// worker paused past its lease, a lost network), each writing its output
// and logs under names of its own (ResultKey, LogKey), but only one
// creates the status, which is written once and names the winning
// execution. Everything that reports or collects a task reads its status
// alone, so a task with a status is finished, and its output is the one
// the status names.
type Status struct {
	Task string `json:"task"`
	// Exec names the execution whose outcome this is; when Status is
	// StatusOK its output is at ResultKey(Task, Exec).
	Exec      string  `json:"exec"`
	Status    string  `json:"status"` // StatusOK or StatusFailed
	Error     string  `json:"error,omitempty"`
	ExitCode  *int    `json:"exit_code,omitempty"`
	Attempts  int     `json:"attempts"`
	DurationS float64 `json:"duration_s"`
	MaxRSSKB  int64   `json:"max_rss_kb"`
	Worker    string  `json:"worker"`
	// Host is the machine that ran the task (an ssh host as given to
	// --ssh, else the hostname).
	Host       string    `json:"host,omitempty"`
	Finished   time.Time `json:"finished"`
	StderrTail string    `json:"stderr_tail,omitempty"`
	// LogAttempts lists the attempts of the execution whose full stderr is
	// stored at LogKey(Task, Exec, attempt) (only attempts that wrote more
	// than the tail).
	LogAttempts []int `json:"log_attempts,omitempty"`
}

const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// ReadStatus reads a task's status, or ErrNotFound if it has not finished.
// Statuses are written once, so each is read from the store once.
func (r *Run) ReadStatus(ctx context.Context, task string) (*Status, error) {
	if st, ok := r.statuses.Load(task); ok {
		return st.(*Status), nil
	}
	data, _, err := r.Store.Get(ctx, r.StatusKey(task))
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading status of task %s: %w", task, err)
	}
	if st.Task != task || !ValidID(st.Exec) || st.Status != StatusOK && st.Status != StatusFailed {
		return nil, fmt.Errorf("status of task %s is invalid (task %q, exec %q, status %q)", task, st.Task, st.Exec, st.Status)
	}
	r.statuses.Store(task, &st)
	return &st, nil
}

// CommitStatus commits st, the outcome of execution st.Exec of task
// st.Task: it creates the task's status, which nothing rewrites. It
// returns the committed status: st when this call committed it (also when
// an earlier call's answer was lost but it took effect), or the status of
// the execution that won, with ErrExists.
func (r *Run) CommitStatus(ctx context.Context, st *Status) (*Status, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	_, err = r.Store.Create(ctx, r.StatusKey(st.Task), data)
	if err == nil {
		r.statuses.Store(st.Task, st)
		return st, nil
	}
	if !errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("committing task %s: %w", st.Task, err)
	}
	cur, rerr := r.ReadStatus(ctx, st.Task)
	if rerr != nil {
		return nil, fmt.Errorf("committing task %s: reading the status in place: %w", st.Task, rerr)
	}
	if cur.Exec == st.Exec {
		return cur, nil // our own commit, whose answer was lost
	}
	return cur, fmt.Errorf("task %s committed by execution %s: %w", st.Task, cur.Exec, ErrExists)
}

// putJSON writes v as indented JSON.
func putJSON(ctx context.Context, s Store, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.Put(ctx, key, append(data, '\n'))
	return err
}
