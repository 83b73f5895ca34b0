package sweep

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are valid specs exercising every feature; the invalid ones come
// from errorTests.
var fuzzSeeds = []string{
	"grid:\n  radius: [1, 2]\n  method: [fast, exact]\n",
	"zip:\n  a: [1, 2]\n  b: [x, y]\n",
	"list:\n  - {a: 1}\n  - {b: 2, a: 3}\n",
	"constants: {out: /data, n: 3}\n",
	"repeat: 3\n",
	"constants: {o: 1}\nlist: [{l: x}, {l: y}]\nrepeat: 2\nzip: {z1: [10, 20], z2: [p, q]}\ngrid: {g: [1, 2]}\n",
	"constants:\n  big: 123456789012345678901234567890\n  h: 0xffffffffffffffffffff\n  f: [.nan, .inf, -.inf, 1e3, .5]\n  b: !!binary aGVsbG8=\n  s: !!set {a, b}\n  d: {1: a, 1.5: b, true: c, null: d}\n",
	"zip:\n  a: &v [1, 2]\n  b: *v\nconstants:\n  m: &m {a: 0, b: 9}\n  d: {b: 1, <<: *m, c: 2}\n",
	"list:\n  - &base {sigma: 1, iterations: 10}\n  - <<: *base\n    sigma: 2\n  - {<<: [{extra: e}, *base]}\n",
	"# c\n---\ngrid: {a: [1]}\n...\n",
}

// maxFuzzInput bounds the inputs FuzzParse tries: large ones are slow to
// minimize and add little; the size limits are tested by TestErrors.
const maxFuzzInput = 1024

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, tt := range errorTests {
		if len(tt.spec) <= maxFuzzInput/4 {
			f.Add([]byte(tt.spec))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		const limit = 1000
		s, err := ParseLimit(data, limit)
		if err != nil {
			if s != nil {
				t.Fatal("Parse returned both a spec and an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "sweep spec: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("Error() = %q, want one line starting with \"sweep spec: \"", msg)
			}
			if e.Msg == "" || e.Line < 0 || e.Line > maxLine(data) {
				t.Fatalf("bad error: %#v", e)
			}
			if !utf8.ValidString(msg) {
				t.Fatalf("Error() is not valid UTF-8: %q", msg)
			}
			return
		}
		n := s.Count()
		if n < 1 || n > limit {
			t.Fatalf("Count() = %d", n)
		}
		tasks := s.Tasks()
		if len(tasks) != n {
			t.Fatalf("%d tasks, Count() = %d", len(tasks), n)
		}
		for i, task := range tasks {
			if task.ID != TaskID(i, n) {
				t.Fatalf("task %d has ID %q", i, task.ID)
			}
			keys := task.Params.Keys()
			for j, k := range keys {
				name, ok := k.(string)
				if !ok {
					t.Fatalf("task %d: parameter name %v is not a string", i, k)
				}
				if name == SeedParam && s.repeat > 0 && j != len(keys)-1 {
					t.Fatalf("task %d: seed is not last", i)
				}
			}
		}
		// The same input gives the same first and last tasks.
		again, err := ParseLimit(data, limit)
		if err != nil {
			t.Fatalf("second Parse failed: %v", err)
		}
		tasks2 := again.Tasks()
		for _, i := range []int{0, n - 1} {
			a, b := boundedShow(tasks[i].Params), boundedShow(tasks2[i].Params)
			if a != b {
				t.Fatalf("task %d differs between parses:\n%s\n%s", i, a, b)
			}
		}
	})
}

// maxLine returns the number of lines of data, counting every character
// YAML may take as a line break.
func maxLine(data []byte) int {
	n := 1
	for _, r := range string(data) {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}

// boundedShow is show cut short, since aliases may make values large.
func boundedShow(v any) string {
	var b strings.Builder
	writeValueMax(&b, v, 10000)
	return b.String()
}
