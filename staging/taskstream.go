package staging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
)

// TaskLine is one line of burst watch --json: a task's results.jsonl line
// and where its files were collected.
type TaskLine struct {
	ResultLine
	OutputFile string `json:"output_file,omitempty"`
	StderrFile string `json:"stderr_file,omitempty"`
}

// TaskStream collects a run's finished tasks into a directory and prints
// each once, as a JSON line.
type TaskStream struct {
	man     *Manifest
	coll    *Collector
	out     string
	enc     *json.Encoder
	printed map[string]bool
}

// NewTaskStream collects into out (the run's own folder when empty) and
// prints to w.
func NewTaskStream(run *Run, man *Manifest, out string, w io.Writer) (*TaskStream, error) {
	if out == "" {
		out = man.OutDir
	}
	if out == "" {
		out = filepath.Join("burst-results", run.ID)
	}
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	coll, err := NewCollector(run, man, out)
	if err != nil {
		return nil, err
	}
	return &TaskStream{man: man, coll: coll, out: out, enc: json.NewEncoder(w), printed: map[string]bool{}}, nil
}

// Emit collects and prints, in task order, the tasks finished in p that
// were not printed yet.
func (s *TaskStream) Emit(ctx context.Context, p Progress) error {
	for _, id := range s.man.Tasks {
		if !p.Finished[id] || s.printed[id] {
			continue
		}
		if err := s.coll.Collect(ctx, id, nil); err != nil {
			return fmt.Errorf("collecting results: %w", err)
		}
		l, ok := s.coll.Line(id)
		if !ok {
			return fmt.Errorf("collecting results: task %s was not collected", id)
		}
		tl := TaskLine{ResultLine: l}
		if l.Status == StatusOK {
			tl.OutputFile = s.coll.OutputPath(id)
		} else {
			tl.StderrFile = filepath.Join(s.out, "failed", id, "stderr.log")
		}
		if err := s.enc.Encode(tl); err != nil {
			return fmt.Errorf("writing to stdout: %w", err)
		}
		s.printed[id] = true
	}
	return nil
}

// Close writes the collected results.jsonl in task order; calling it again
// does nothing.
func (s *TaskStream) Close() error {
	if err := s.coll.Close(); err != nil {
		return fmt.Errorf("collecting results: %w", err)
	}
	return nil
}
