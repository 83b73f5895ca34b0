package staging

import (
	"strings"
	"testing"
)

// A run argument is an id or STORE/runs/ID, and anything else is refused
// with an error naming it.
func TestParseRunArg(t *testing.T) {
	for _, c := range []struct {
		arg, loc, id, err string
	}{
		{arg: "sweep-20260101-abc", id: "sweep-20260101-abc"},
		{arg: "/tmp/store/runs/r1", loc: "/tmp/store", id: "r1"},
		{arg: "s3://bucket/prefix/runs/r1", loc: "s3://bucket/prefix", id: "r1"},
		{arg: "a/runs/b/runs/r1", loc: "a/runs/b", id: "r1"},
		{arg: "/runs/r1", loc: "", id: "r1"},
		{arg: "store/r1", err: `"store/r1" is neither a run id nor a run location (STORE/runs/ID)`},
		{arg: "store/runs/r1/x", err: "is neither a run id"},
		{arg: "store/runs/", err: `"" is not a run id`},
		{arg: "bad id", err: `"bad id" is not a run id`},
		{arg: "", err: `"" is not a run id`},
	} {
		loc, id, err := ParseRunArg(c.arg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseRunArg(%q) = %q, %q, %v; want error %q", c.arg, loc, id, err, c.err)
			}
			continue
		}
		if err != nil || loc != c.loc || id != c.id {
			t.Errorf("ParseRunArg(%q) = %q, %q, %v; want %q, %q", c.arg, loc, id, err, c.loc, c.id)
		}
	}
}

// Whatever the argument, ParseRunArg returns a valid id or an error, and
// never panics.
func FuzzParseRunArg(f *testing.F) {
	for _, s := range []string{"r1", "s/runs/r1", "s/runs/", "a/b", "", "/runs/x/runs/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		loc, id, err := ParseRunArg(arg)
		if err != nil {
			return
		}
		if !ValidID(id) {
			t.Fatalf("ParseRunArg(%q) gave invalid id %q", arg, id)
		}
		if loc != "" && loc+"/runs/"+id != arg {
			t.Fatalf("ParseRunArg(%q) = %q, %q: not the argument's parts", arg, loc, id)
		}
	})
}
