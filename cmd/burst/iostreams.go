package main

import (
	"encoding/json"
	"io"
	"os"

	"golang.org/x/term"
)

// ioStreams is where commands write: results and progress for people on
// Out, errors on Err. Diagnostics go through log/slog, to Err, only with
// --verbose.
type ioStreams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// OutTTY and InTTY say whether Out and In are terminals: live progress
	// and questions need one.
	OutTTY bool
	InTTY  bool
	Width  int
}

func systemIO() *ioStreams {
	s := &ioStreams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Width: 80}
	if term.IsTerminal(int(os.Stdout.Fd())) {
		s.OutTTY = true
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 20 {
			s.Width = w
		}
	}
	s.InTTY = term.IsTerminal(int(os.Stdin.Fd()))
	return s
}

// writeJSON writes v as indented JSON: what --json prints.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
