package staging_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/pickle"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// An inputs folder gives one task per pickled dict, named by its file and
// in name order; anything else in it is refused with the file named.
func TestReadInputsDir(t *testing.T) {
	dict := pickle.NewDict()
	dict.Set("n", int64(1))
	pd, err := pickle.Marshal(dict)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pickle.Marshal([]any{int64(1)})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.pkl"), pd)
	writeFile(t, filepath.Join(dir, "a.pkl"), pd)
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not an input"))
	in, err := staging.ReadInputsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 || in[0].ID != "a" || in[1].ID != "b" || string(in[0].Pickle) != string(pd) {
		t.Fatalf("ReadInputsDir = %+v, want tasks a, b holding the pickle", in)
	}

	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"bad name.pkl", pd, "task names may hold only"},
		{"x.pkl", []byte("garbage"), "is not a pickle"},
		{"x.pkl", pl, "holds a pickled list; each input must be a dict"},
	} {
		d := t.TempDir()
		writeFile(t, filepath.Join(d, c.name), c.data)
		_, err := staging.ReadInputsDir(d)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: err = %v, want %q naming the file", c.name, err, c.want)
		}
	}
	if _, err := staging.ReadInputsDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.pkl files") {
		t.Errorf("empty folder: err = %v", err)
	}
	if _, err := staging.ReadInputsDir(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "inputs: ") {
		t.Errorf("missing folder: err = %v", err)
	}
}

// A sweep spec gives one pickled dict per task; a spec that does not parse
// is refused with its path.
func TestSweepInputs(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "sweep.yaml")
	writeFile(t, spec, []byte("constants:\n  r: 1.5\nrepeat: 3\n"))
	in, err := staging.SweepInputs(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 3 {
		t.Fatalf("got %d inputs, want 3", len(in))
	}
	for _, i := range in {
		v, err := pickle.Unmarshal(i.Pickle)
		if err != nil {
			t.Fatalf("task %s: %v", i.ID, err)
		}
		d, ok := v.(*pickle.Dict)
		if !ok {
			t.Fatalf("task %s holds %s, want a dict", i.ID, pickle.TypeName(v))
		}
		if r, _ := d.Get("r"); r != 1.5 {
			t.Errorf("task %s: r = %v, want 1.5", i.ID, r)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, []byte("repeat: [\n"))
	if _, err := staging.SweepInputs(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
		t.Errorf("bad spec: err = %v, want it to start with the path", err)
	}
	if _, err := staging.SweepInputs(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "sweep spec: ") {
		t.Errorf("missing spec: err = %v", err)
	}
}
