package staging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/slicerburst/burst/staging/pickle"
)

// ResultLine is one line of results.jsonl.
type ResultLine struct {
	Task      string          `json:"task"`
	Status    string          `json:"status"`
	Params    json.RawMessage `json:"params"`
	Output    json.RawMessage `json:"output"`
	Error     string          `json:"error"`
	Attempts  int             `json:"attempts"`
	DurationS float64         `json:"duration_s"`
	MaxRSSKB  int64           `json:"max_rss_kb"`
	// Host is the machine that ran the task.
	Host string `json:"host,omitempty"`
}

// Collector copies a run's finished tasks from the store into a local
// directory:
//
//	outputs/<task>.pkl         each successful task's output, as written
//	results.jsonl              one ResultLine per finished task
//	failed/<task>/input.pkl    each failed task's input
//	failed/<task>/stderr.log   and its last attempt's stderr
//
// It fetches only what the directory does not have yet, so collecting again
// (during a run, or later with burst results) is cheap.
type Collector struct {
	run   *Run
	man   *Manifest
	out   string
	mu    sync.Mutex
	lines map[string]ResultLine
	jsonl *os.File
}

// NewCollector opens out (creating it) and reads what it already holds.
func NewCollector(run *Run, man *Manifest, out string) (*Collector, error) {
	if err := os.MkdirAll(filepath.Join(out, "outputs"), 0o755); err != nil {
		return nil, fmt.Errorf("creating results directory: %w", err)
	}
	c := &Collector{run: run, man: man, out: out, lines: map[string]ResultLine{}}
	if err := c.load(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(c.indexPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening results.jsonl: %w", err)
	}
	c.jsonl = f
	return c, nil
}

func (c *Collector) indexPath() string { return filepath.Join(c.out, "results.jsonl") }

// OutputPath is where a successful task's output is collected.
func (c *Collector) OutputPath(task string) string {
	return filepath.Join(c.out, "outputs", task+".pkl")
}

// load reads an existing results.jsonl, keeping lines whose files are
// still there.
func (c *Collector) load() error {
	data, err := os.ReadFile(c.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading results.jsonl: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var l ResultLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || !ValidID(l.Task) {
			continue // a torn last line from an interrupted collection
		}
		if l.Status == StatusOK {
			if _, err := os.Stat(c.OutputPath(l.Task)); err != nil {
				continue
			}
		}
		c.lines[l.Task] = l
	}
	return nil
}

// Has reports whether task is collected.
func (c *Collector) Has(task string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.lines[task]
	return ok
}

// Line returns a collected task's results.jsonl line.
func (c *Collector) Line(task string) (ResultLine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lines[task]
	return l, ok
}

// Count returns how many tasks are collected.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// Collect fetches one finished task, given its status (read from the store
// when nil). It is a no-op for a task already collected.
func (c *Collector) Collect(ctx context.Context, task string, st *Status) error {
	if c.Has(task) {
		return nil
	}
	if st == nil {
		var err error
		if st, err = c.run.ReadStatus(ctx, task); err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
	}
	input, _, err := c.run.Store.Get(ctx, c.run.TaskKey(task))
	if err != nil {
		return fmt.Errorf("collecting task %s: input: %w", task, err)
	}
	line := ResultLine{
		Task: task, Status: st.Status, Error: st.Error, Attempts: st.Attempts,
		DurationS: st.DurationS, MaxRSSKB: st.MaxRSSKB, Host: st.Host,
		Params: decodeJSON(input), Output: json.RawMessage("null"),
	}
	if st.Status == StatusOK {
		output, _, err := c.run.Store.Get(ctx, c.run.ResultKey(task, st.Exec))
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("collecting task %s: the output its status names (execution %s) is missing", task, st.Exec)
		}
		if err != nil {
			return fmt.Errorf("collecting task %s: output: %w", task, err)
		}
		if err := writeFileAtomic(c.OutputPath(task), output); err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
		line.Output = decodeJSON(output)
	} else {
		dir := filepath.Join(c.out, "failed", task)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
		if err := writeFileAtomic(filepath.Join(dir, "input.pkl"), input); err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
		log, err := c.run.Stderr(ctx, st)
		if err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
		if err := writeFileAtomic(filepath.Join(dir, "stderr.log"), log); err != nil {
			return fmt.Errorf("collecting task %s: %w", task, err)
		}
	}
	enc, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("collecting task %s: %w", task, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.lines[task]; ok {
		return nil
	}
	if _, err := c.jsonl.Write(append(enc, '\n')); err != nil {
		return fmt.Errorf("writing results.jsonl: %w", err)
	}
	c.lines[task] = line
	return nil
}

// Output returns a finished task's committed output: that of the
// execution its status names. It returns ErrNotFound when the task has
// not finished, and an error when it failed.
func (r *Run) Output(ctx context.Context, task string) ([]byte, error) {
	st, err := r.ReadStatus(ctx, task)
	if err != nil {
		return nil, err
	}
	if st.Status != StatusOK {
		return nil, fmt.Errorf("task %s failed: %s", task, st.Error)
	}
	data, _, err := r.Store.Get(ctx, r.ResultKey(task, st.Exec))
	if err != nil {
		return nil, fmt.Errorf("output of task %s: %w", task, err)
	}
	return data, nil
}

// Stderr returns a finished task's stderr from its last attempt: the full
// log when one was stored, else the tail kept in its status.
func (r *Run) Stderr(ctx context.Context, st *Status) ([]byte, error) {
	for _, a := range st.LogAttempts {
		if a == st.Attempts {
			data, _, err := r.Store.Get(ctx, r.LogKey(st.Task, st.Exec, a))
			if err != nil {
				return nil, fmt.Errorf("reading stderr log: %w", err)
			}
			return data, nil
		}
	}
	return []byte(st.StderrTail), nil
}

// CollectAll collects every finished task not collected yet and returns
// how many it fetched.
func (c *Collector) CollectAll(ctx context.Context, p Progress) (int, error) {
	n := 0
	for _, id := range c.man.Tasks {
		if !p.Finished[id] || c.Has(id) {
			continue
		}
		if err := c.Collect(ctx, id, nil); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Close rewrites results.jsonl in task order and closes it.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jsonl == nil {
		return nil
	}
	c.jsonl.Close()
	c.jsonl = nil
	var buf bytes.Buffer
	for _, id := range c.man.Tasks {
		l, ok := c.lines[id]
		if !ok {
			continue
		}
		enc, err := json.Marshal(l)
		if err != nil {
			return err
		}
		buf.Write(enc)
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(c.indexPath(), buf.Bytes()); err != nil {
		return fmt.Errorf("writing results.jsonl: %w", err)
	}
	return nil
}

// decodeJSON renders a pickle as JSON for results.jsonl; a pickle that
// cannot be decoded becomes {"undecodable": "<reason>"}.
func decodeJSON(p []byte) json.RawMessage {
	v, err := pickle.Unmarshal(p)
	if err != nil {
		b, _ := json.Marshal(map[string]string{"undecodable": err.Error()})
		return b
	}
	b, err := json.Marshal(pickle.ToJSON(v))
	if err != nil {
		b, _ = json.Marshal(map[string]string{"undecodable": err.Error()})
	}
	return b
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
