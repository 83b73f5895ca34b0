package sweep

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/slicerburst/burst/staging/pickle"
)

// show renders a value roughly as Python's repr would, so that expected
// params read like what the task script sees.
func show(v any) string {
	var b strings.Builder
	writeValue(&b, v)
	return b.String()
}

func writeValue(b *strings.Builder, v any) {
	writeValueMax(b, v, 1<<20)
}

// writeValueMax writes v to b, stopping once b holds limit bytes.
func writeValueMax(b *strings.Builder, v any, limit int) {
	if b.Len() > limit {
		return
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case *big.Int:
		b.WriteString(v.String() + "(big)")
	case float64:
		switch {
		case math.IsNaN(v):
			b.WriteString("nan")
		case math.IsInf(v, 1):
			b.WriteString("inf")
		case math.IsInf(v, -1):
			b.WriteString("-inf")
		default:
			s := strconv.FormatFloat(v, 'g', -1, 64)
			if !strings.ContainsAny(s, ".e") {
				s += ".0"
			}
			b.WriteString(s)
		}
	case string:
		b.WriteString("'" + strings.ReplaceAll(v, "'", `\'`) + "'")
	case []byte:
		fmt.Fprintf(b, "b%q", v)
	case []any:
		b.WriteString("[")
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValueMax(b, x, limit)
		}
		b.WriteString("]")
	case pickle.Set:
		b.WriteString("{")
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValueMax(b, x, limit)
		}
		b.WriteString("}(set)")
	case *pickle.Dict:
		b.WriteString("{")
		for i, k := range v.Keys() {
			if i > 0 {
				b.WriteString(", ")
			}
			writeValueMax(b, k, limit)
			b.WriteString(": ")
			x, _ := v.Get(k)
			writeValueMax(b, x, limit)
		}
		b.WriteString("}")
	default:
		fmt.Fprintf(b, "<%T>", v)
	}
}

func showTasks(tasks []Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID + " " + show(t.Params)
	}
	return out
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string
	}{{
		name: "grid first key slowest",
		spec: `
grid:
  radius: [1, 2]
  method: [fast, exact, slow]
`,
		want: []string{
			"0000 {'radius': 1, 'method': 'fast'}",
			"0001 {'radius': 1, 'method': 'exact'}",
			"0002 {'radius': 1, 'method': 'slow'}",
			"0003 {'radius': 2, 'method': 'fast'}",
			"0004 {'radius': 2, 'method': 'exact'}",
			"0005 {'radius': 2, 'method': 'slow'}",
		},
	}, {
		name: "grid single parameter",
		spec: "grid: {x: [a]}",
		want: []string{"0000 {'x': 'a'}"},
	}, {
		name: "zip element-wise",
		spec: `
zip:
  image: [a.nrrd, b.nrrd, c.nrrd]
  mask: [a-m.nrrd, b-m.nrrd, c-m.nrrd]
`,
		want: []string{
			"0000 {'image': 'a.nrrd', 'mask': 'a-m.nrrd'}",
			"0001 {'image': 'b.nrrd', 'mask': 'b-m.nrrd'}",
			"0002 {'image': 'c.nrrd', 'mask': 'c-m.nrrd'}",
		},
	}, {
		name: "list entries with different keys keep first-appearance order",
		spec: `
list:
  - {sigma: 0.5}
  - {iterations: 20, sigma: 1.0}
  - {}
`,
		want: []string{
			"0000 {'sigma': 0.5}",
			"0001 {'sigma': 1.0, 'iterations': 20}",
			"0002 {}",
		},
	}, {
		name: "constants alone give one task",
		spec: "constants: {out: /data, n: 3}",
		want: []string{"0000 {'out': '/data', 'n': 3}"},
	}, {
		name: "repeat alone",
		spec: "repeat: 3",
		want: []string{"0000 {'seed': 0}", "0001 {'seed': 1}", "0002 {'seed': 2}"},
	}, {
		name: "repeat 1 still adds seed",
		spec: "grid: {a: [1, 2]}\nrepeat: 1",
		want: []string{"0000 {'a': 1, 'seed': 0}", "0001 {'a': 2, 'seed': 0}"},
	}, {
		name: "seed is an ordinary parameter without repeat",
		spec: "grid: {seed: [7, 8]}",
		want: []string{"0000 {'seed': 7}", "0001 {'seed': 8}"},
	}, {
		name: "grid x zip x list, constants, repeat; seed fastest and last",
		spec: `
constants:
  out: /o
list:
  - {l: x}
  - {l: y}
repeat: 2
zip:
  z1: [10, 20]
  z2: [p, q]
grid:
  g: [1, 2]
`,
		want: []string{
			"0000 {'out': '/o', 'l': 'x', 'z1': 10, 'z2': 'p', 'g': 1, 'seed': 0}",
			"0001 {'out': '/o', 'l': 'x', 'z1': 10, 'z2': 'p', 'g': 1, 'seed': 1}",
			"0002 {'out': '/o', 'l': 'y', 'z1': 10, 'z2': 'p', 'g': 1, 'seed': 0}",
			"0003 {'out': '/o', 'l': 'y', 'z1': 10, 'z2': 'p', 'g': 1, 'seed': 1}",
			"0004 {'out': '/o', 'l': 'x', 'z1': 20, 'z2': 'q', 'g': 1, 'seed': 0}",
			"0005 {'out': '/o', 'l': 'x', 'z1': 20, 'z2': 'q', 'g': 1, 'seed': 1}",
			"0006 {'out': '/o', 'l': 'y', 'z1': 20, 'z2': 'q', 'g': 1, 'seed': 0}",
			"0007 {'out': '/o', 'l': 'y', 'z1': 20, 'z2': 'q', 'g': 1, 'seed': 1}",
			"0008 {'out': '/o', 'l': 'x', 'z1': 10, 'z2': 'p', 'g': 2, 'seed': 0}",
			"0009 {'out': '/o', 'l': 'x', 'z1': 10, 'z2': 'p', 'g': 2, 'seed': 1}",
			"0010 {'out': '/o', 'l': 'y', 'z1': 10, 'z2': 'p', 'g': 2, 'seed': 0}",
			"0011 {'out': '/o', 'l': 'y', 'z1': 10, 'z2': 'p', 'g': 2, 'seed': 1}",
			"0012 {'out': '/o', 'l': 'x', 'z1': 20, 'z2': 'q', 'g': 2, 'seed': 0}",
			"0013 {'out': '/o', 'l': 'x', 'z1': 20, 'z2': 'q', 'g': 2, 'seed': 1}",
			"0014 {'out': '/o', 'l': 'y', 'z1': 20, 'z2': 'q', 'g': 2, 'seed': 0}",
			"0015 {'out': '/o', 'l': 'y', 'z1': 20, 'z2': 'q', 'g': 2, 'seed': 1}",
		},
	}, {
		name: "key order interleaves sections by first appearance",
		spec: `
grid: {a: [1]}
list:
  - {b: 2}
  - {d: 4, b: 3}
constants: {c: 0}
`,
		want: []string{
			"0000 {'a': 1, 'b': 2, 'c': 0}",
			"0001 {'a': 1, 'b': 3, 'd': 4, 'c': 0}",
		},
	}, {
		name: "scalar types",
		spec: `
constants:
  int: 42
  neg: -7
  hex: 0x1f
  oct: 0o17
  under: 1_000
  int64max: 9223372036854775807
  int64min: -9223372036854775808
  above: 9223372036854775808
  below: -9223372036854775809
  huge: 123456789012345678901234567890
  bighex: 0xffffffffffffffffffff
  float: 2.5
  exp: 1e3
  half: .5
  nan: .nan
  inf: .inf
  ninf: -.inf
  NaN2: .NaN
  str: hello
  quoted: "42"
  single: '1e3'
  yes: yes
  on: on
  t: true
  f: False
  none: null
  tilde: ~
  empty:
  explicit_int: !!int "12"
  explicit_float: !!float 3
  explicit_str: !!str 12
  bigtagged: !!int 18446744073709551616
  bin: !!binary aGVsbG8=
  multiline: |
    a
    b
  date_quoted: "2024-01-01"
`,
		want: []string{"0000 {" +
			"'int': 42, 'neg': -7, 'hex': 31, 'oct': 15, 'under': 1000, " +
			"'int64max': 9223372036854775807, 'int64min': -9223372036854775808, " +
			"'above': 9223372036854775808(big), 'below': -9223372036854775809(big), " +
			"'huge': 123456789012345678901234567890(big), 'bighex': 1208925819614629174706175(big), " +
			"'float': 2.5, 'exp': 1000.0, 'half': 0.5, 'nan': nan, 'inf': inf, 'ninf': -inf, 'NaN2': nan, " +
			"'str': 'hello', 'quoted': '42', 'single': '1e3', 'yes': 'yes', 'on': 'on', " +
			"'t': True, 'f': False, 'none': None, 'tilde': None, 'empty': None, " +
			"'explicit_int': 12, 'explicit_float': 3.0, 'explicit_str': '12', " +
			"'bigtagged': 18446744073709551616(big), 'bin': b\"hello\", " +
			"'multiline': 'a\nb\n', 'date_quoted': '2024-01-01'}"},
	}, {
		name: "lists and nested mappings with scalar keys",
		spec: `
grid:
  shape:
    - [1, 2, [3, []]]
    - {x: 1, 2: two, 1.5: f, true: t, null: n, nested: {deep: [a]}}
constants:
  set: !!set {a, b}
`,
		want: []string{
			"0000 {'shape': [1, 2, [3, []]], 'set': {'a', 'b'}(set)}",
			"0001 {'shape': {'x': 1, 2: 'two', 1.5: 'f', True: 't', None: 'n', 'nested': {'deep': ['a']}}, 'set': {'a', 'b'}(set)}",
		},
	}, {
		name: "anchors and aliases",
		spec: `
zip:
  a: &vals [1, 2]
  b: *vals
constants:
  opts: &o {k: v}
  again: *o
  s: &s text
  t: *s
`,
		want: []string{
			"0000 {'a': 1, 'b': 1, 'opts': {'k': 'v'}, 'again': {'k': 'v'}, 's': 'text', 't': 'text'}",
			"0001 {'a': 2, 'b': 2, 'opts': {'k': 'v'}, 'again': {'k': 'v'}, 's': 'text', 't': 'text'}",
		},
	}, {
		name: "merge keys in list entries",
		spec: `
list:
  - &base {sigma: 1, iterations: 10}
  - <<: *base
    sigma: 2
  - {<<: [{extra: e, sigma: 9}, *base]}
`,
		want: []string{
			"0000 {'sigma': 1, 'iterations': 10}",
			"0001 {'sigma': 2, 'iterations': 10}",
			"0002 {'sigma': 9, 'iterations': 10, 'extra': 'e'}",
		},
	}, {
		name: "merged keys take the place of <<",
		spec: `
constants:
  m: &m {a: 0, b: 9}
  d: {b: 1, <<: *m, c: 2}
  e: {<<: []}
`,
		want: []string{"0000 {'m': {'a': 0, 'b': 9}, 'd': {'b': 1, 'a': 0, 'c': 2}, 'e': {}}"},
	}, {
		name: "quoted << is an ordinary key",
		spec: `constants: {d: {"<<": 1}, e: <<}`,
		want: []string{"0000 {'d': {'<<': 1}, 'e': '<<'}"},
	}, {
		name: "document markers and comments",
		spec: "# sweep\n---\ngrid: {a: [1]} # one\n...\n",
		want: []string{"0000 {'a': 1}"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks, err := Expand([]byte(tt.spec))
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			got := showTasks(tasks)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			s, err := Parse([]byte(tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			if s.Count() != len(tt.want) {
				t.Errorf("Count() = %d, want %d", s.Count(), len(tt.want))
			}
		})
	}
}

func TestExpandIsDeterministic(t *testing.T) {
	spec := []byte(`
grid: {a: [1, .nan, x], b: [{k: [1, 2]}, 123456789012345678901234567890]}
zip: {c: [1, 2], d: [3, 4]}
list: [{e: 1}, {f: 2}]
constants: {g: &g [1, 2], h: *g}
repeat: 3
`)
	first, err := Expand(spec)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := Expand(spec)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := strings.Join(showTasks(first), "\n"), strings.Join(showTasks(again), "\n"); a != b {
			t.Fatalf("expansions differ:\n%s\n---\n%s", a, b)
		}
	}
	if len(first) != 3*2*2*2*3 {
		t.Errorf("got %d tasks, want 72", len(first))
	}
}

func TestAllStopsEarly(t *testing.T) {
	s, err := Parse([]byte("repeat: 100"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for task := range s.All() {
		ids = append(ids, task.ID)
		if len(ids) == 3 {
			break
		}
	}
	if got := strings.Join(ids, ","); got != "0000,0001,0002" {
		t.Errorf("ids = %s", got)
	}
}

func TestNilSpec(t *testing.T) {
	var s *Spec
	if s.Count() != 0 || len(s.Tasks()) != 0 {
		t.Error("nil Spec is not empty")
	}
}

func TestTaskID(t *testing.T) {
	tests := []struct {
		i, n int
		want string
	}{
		{0, 1, "0000"},
		{0, 0, "0000"},
		{9, 10, "0009"},
		{49, 50, "0049"},
		{9999, 10000, "9999"},
		{0, 10001, "00000"},
		{10000, 10001, "10000"},
		{5, 123456, "000005"},
		{123455, 123456, "123455"},
	}
	for _, tt := range tests {
		if got := TaskID(tt.i, tt.n); got != tt.want {
			t.Errorf("TaskID(%d, %d) = %q, want %q", tt.i, tt.n, got, tt.want)
		}
	}
}

func TestTaskIDsOfSweeps(t *testing.T) {
	tests := []struct {
		spec        string
		n           int
		first, last string
	}{
		{"repeat: 10", 10, "0000", "0009"},
		{"grid: {a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}\nrepeat: 1000", 10000, "0000", "9999"},
		{"repeat: 10001", 10001, "00000", "10000"},
	}
	for _, tt := range tests {
		tasks, err := Expand([]byte(tt.spec))
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != tt.n {
			t.Fatalf("%q: %d tasks, want %d", tt.spec, len(tasks), tt.n)
		}
		if tasks[0].ID != tt.first || tasks[tt.n-1].ID != tt.last {
			t.Errorf("%q: ids %s..%s, want %s..%s", tt.spec, tasks[0].ID, tasks[tt.n-1].ID, tt.first, tt.last)
		}
		for i := 1; i < len(tasks); i++ {
			if tasks[i-1].ID >= tasks[i].ID {
				t.Fatalf("%q: ids %s, %s out of order", tt.spec, tasks[i-1].ID, tasks[i].ID)
			}
		}
	}
	// The last of 10000 tasks in the grid example has a=9 and seed 999.
	tasks, _ := Expand([]byte(tests[1].spec))
	if got := show(tasks[9999].Params); got != "{'a': 9, 'seed': 999}" {
		t.Errorf("last task params = %s", got)
	}
}

func TestParseLimit(t *testing.T) {
	spec := []byte("grid: {a: [1, 2, 3], b: [1, 2, 3, 4]}")
	if _, err := ParseLimit(spec, 12); err != nil {
		t.Errorf("limit 12: %v", err)
	}
	_, err := ParseLimit(spec, 11)
	checkError(t, err, "", 0, "the spec gives 12 tasks, more than the maximum of 11")
	if s, err := ParseLimit(spec, 0); err != nil || s.Count() != 12 {
		t.Errorf("limit 0 means the default: %v", err)
	}
}

func checkError(t *testing.T, err error, field string, line int, fragment string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", fragment)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if e.Field != field || e.Line != line || !strings.Contains(e.Msg, fragment) {
		t.Errorf("got field %q, line %d, msg %q\nwant field %q, line %d, msg containing %q", e.Field, e.Line, e.Msg, field, line, fragment)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "sweep spec: ") || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("Error() = %q, want one line starting with \"sweep spec: \"", msg)
	}
}

// errorTests are invalid specs with the error they give; they also seed
// the fuzzer.
var errorTests = []struct {
	name     string
	spec     string
	field    string
	line     int
	fragment string
}{
	// The file as a whole.
	{"empty file", "", "", 0, "the file is empty"},
	{"only comments", "# nothing\n", "", 0, "the file is empty"},
	{"empty document", "---\n", "", 0, "the spec is empty"},
	{"null document", "null\n", "", 0, "the spec is empty"},
	{"empty mapping", "{}\n", "", 1, "the spec is empty"},
	{"not a mapping", "- grid\n", "", 1, "must be a mapping with at least one of grid, zip, list, constants or repeat, got a list"},
	{"scalar", "grid\n", "", 1, `got the string "grid"`},
	{"several documents", "grid: {a: [1]}\n---\ngrid: {a: [2]}\n", "", 2, "several YAML documents"},
	{"unknown key", "grid: {a: [1]}\ngrdi: {b: [2]}\n", "grdi", 2, `unknown key (did you mean "grid"?)`},
	{"unknown key far", "params: {b: [2]}\n", "params", 1, "unknown key; a spec has only grid, zip, list, constants or repeat"},
	{"unknown non-string key", "1: x\n", "[1]", 1, "unknown key"},
	{"duplicate section", "grid: {a: [1]}\ngrid: {b: [1]}\n", "grid", 2, "duplicate key"},

	// Invalid YAML.
	{"syntax error", "grid:\n  a: [1, 2\n  b: [3]\n", "", 2, "invalid YAML: did not find expected ',' or ']'"},
	{"syntax error first line", "grid: a: b\n", "", 1, "invalid YAML: mapping values are not allowed"},
	{"bad indentation", "grid:\n  a: [1]\n b: [2]\n", "", 3, "invalid YAML: did not find expected key"},
	{"tab", "grid:\n\ta: [1]\n", "", 2, "invalid YAML: found character that cannot start any token"},
	{"unknown anchor", "grid:\n  a: [1]\n  b: *nope\n", "", 3, "alias *nope refers to no anchor"},
	{"bad utf-8", "grid:\n  a: [\xff]\n", "", 2, "invalid YAML: invalid leading UTF-8 octet"},
	{"control character", "grid:\n  a: [\x01]\n", "", 2, "invalid YAML: control characters are not allowed"},

	// Section shapes.
	{"grid not a mapping", "grid: [1, 2]\n", "grid", 1, "must be a mapping of parameter names to lists of values, got a list"},
	{"grid null", "grid:\nrepeat: 2\n", "grid", 1, "is empty"},
	{"grid empty", "grid: {}\n", "grid", 1, "is empty"},
	{"grid value a mapping", "grid:\n  sigma: [1]\n\n  radius:\n    min: 1\n", "grid.radius", 4, "must be a list of values, got a mapping"},
	{"grid value a scalar", "grid:\n  radius: 5\n", "grid.radius", 2, "must be a list of values, got the integer 5; write [5] for a single value"},
	{"grid value null", "grid:\n  radius:\n", "grid.radius", 2, "must be a list of values, got null"},
	{"grid empty list", "grid:\n  a: [1]\n  b: []\n", "grid.b", 3, "is an empty list, so the grid would give no tasks"},
	{"grid value tagged", "grid:\n  a: !foo [1]\n", "grid.a", 2, "unsupported tag !foo on a list"},
	{"grid non-string name", "grid:\n  1: [1]\n", "grid[1]", 2, "parameter names must be strings, got the integer 1; quote it"},
	{"grid null name", "grid:\n  ~: [1]\n", "grid[None]", 2, "parameter names must be strings, got null"},
	{"grid duplicate name", "grid:\n  a: [1]\n  a: [2]\n", "grid.a", 3, `duplicate key "a"`},
	{"zip not a mapping", "zip: 3\n", "zip", 1, "must be a mapping of parameter names to lists of values, got the integer 3"},
	{"zip unequal", "zip:\n  a: [1, 2, 3]\n  b: [1, 2]\n", "zip.b", 3, "has 2 values but zip.a has 3; all zip lists must have the same length"},
	{"zip empty lists", "zip:\n  a: []\n  b: []\n", "zip.a", 2, "is an empty list, so zip would give no tasks"},
	{"zip value not a list", "zip:\n  a: x\n", "zip.a", 2, "must be a list of values, got the string \"x\"; write [x] for a single value"},
	{"list not a list", "list: {a: 1}\n", "list", 1, "must be a list of mappings of parameter names to values, got a mapping"},
	{"list empty", "list: []\n", "list", 1, "is empty, so the sweep would have no tasks"},
	{"list entry not a mapping", "list:\n  - {a: 1}\n  - 5\n", "list[1]", 3, "must be a mapping of parameter names to values, got the integer 5"},
	{"list entry a list", "list:\n  - [a, 1]\n", "list[0]", 2, "got a list"},
	{"list entry non-string name", "list:\n  - {a: 1}\n  - {a: 2, true: 3}\n", "list[1][True]", 3, "parameter names must be strings, got the boolean True"},
	{"list entry duplicate", "list:\n  - {a: 1, a: 2}\n", "list[0].a", 2, `duplicate key "a"`},
	{"constants not a mapping", "constants: [a, b]\n", "constants", 1, "must be a mapping of parameter names to values, got a list"},
	{"constants empty", "constants: {}\n", "constants", 1, "is empty"},
	{"repeat zero", "repeat: 0\n", "repeat", 1, "must be a positive integer, got the integer 0"},
	{"repeat negative", "repeat: -2\n", "repeat", 1, "must be a positive integer, got the integer -2"},
	{"repeat float", "repeat: 2.0\n", "repeat", 1, "must be a positive integer, got the float 2.0"},
	{"repeat string", "repeat: \"3\"\n", "repeat", 1, `must be a positive integer, got the string "3"`},
	{"repeat bool", "repeat: true\n", "repeat", 1, "must be a positive integer, got the boolean True"},
	{"repeat list", "repeat: [3]\n", "repeat", 1, "must be a positive integer, got a list"},
	{"repeat null", "repeat:\n", "repeat", 1, "must be a positive integer, got null"},
	{"repeat huge", "repeat: 100000000000000000000000000000\n", "", 0, "the spec gives 100000000000000000000000000000 tasks, more than the maximum of 1000000"},

	// Parameter names across sections.
	{"name in two sections", "grid:\n  a: [1]\nlist:\n  - {b: 1}\n  - {a: 2}\n", "list[1].a", 5, `parameter "a" is also defined in grid (line 2)`},
	{"name in constants and zip", "constants: {x: 1}\nzip: {x: [1]}\n", "zip.x", 2, `parameter "x" is also defined in constants (line 1)`},
	{"seed with repeat", "repeat: 2\ngrid:\n  seed: [1, 2]\n", "grid.seed", 3, `"seed" is set by repeat`},
	{"seed in list with repeat", "list:\n  - {seed: 1}\nrepeat: 2\n", "list[0].seed", 2, `"seed" is set by repeat`},

	// Values.
	{"date", "constants:\n  day: 2024-01-01\n", "constants.day", 2, `dates and times are not supported; quote the value to pass it as a string: "2024-01-01"`},
	{"datetime", "grid:\n  t: [2024-01-01T10:00:00Z]\n", "grid.t[0]", 2, "dates and times are not supported"},
	{"explicit timestamp", "constants: {t: !!timestamp x}\n", "constants.t", 1, "dates and times are not supported"},
	{"custom tag", "constants:\n  v: !vector [1, 2]\n", "constants.v", 2, "unsupported tag !vector on a list"},
	{"custom scalar tag", "constants:\n  v: !secret abc\n", "constants.v", 2, "unsupported tag !secret"},
	{"python tag", "constants:\n  v: !!python/tuple [1, 2]\n", "constants.v", 2, "unsupported tag !!python/tuple"},
	{"omap", "constants:\n  v: !!omap [{a: 1}]\n", "constants.v", 2, "unsupported tag !!omap"},
	{"tag on mapping", "constants:\n  v: !thing {a: 1}\n", "constants.v", 2, "unsupported tag !thing on a mapping"},
	{"bad explicit int", "constants: {n: !!int abc}\n", "constants.n", 1, `invalid !!int value "abc"`},
	{"bad explicit float", "constants: {n: !!float abc}\n", "constants.n", 1, `invalid !!float value "abc"`},
	{"bad explicit bool", "constants: {n: !!bool yes}\n", "constants.n", 1, `invalid !!bool value "yes"`},
	{"bad explicit null", "constants: {n: !!null x}\n", "constants.n", 1, `invalid !!null value "x"`},
	{"bad binary", "constants: {n: !!binary '***'}\n", "constants.n", 1, "invalid base64"},
	{"seq tag on scalar", "constants: {n: !!seq x}\n", "constants.n", 1, "unsupported tag !!seq"},
	{"merge tag as value", "constants: {n: !!merge x}\n", "constants.n", 1, "only allowed on a mapping key"},
	{"long integer", "constants: {n: 1" + strings.Repeat("0", 5000) + "}\n", "constants.n", 1, "integer literal longer than 4300 digits"},
	{"list key", "constants:\n  d:\n    ? [1, 2]\n    : x\n", "constants.d", 3, "mapping keys must be strings, numbers, booleans or null, not a list"},
	{"mapping key", "constants:\n  d: {{a: 1}: x}\n", "constants.d", 2, "mapping keys must be strings, numbers, booleans or null, not a mapping"},
	{"python-equal keys", "constants:\n  d:\n    1: a\n    1.0: b\n", "constants.d[1.0]", 4, "duplicate key 1.0"},
	{"true and 1", "constants:\n  d: {1: a, true: b}\n", "constants.d[True]", 2, "duplicate key True"},
	{"nan key", "constants:\n  d: {.nan: a}\n", "constants.d", 2, "NaN cannot be a mapping key"},
	{"binary key", "constants:\n  d: {!!binary aGk=: a}\n", "constants.d", 2, "binary data cannot be a mapping key"},
	{"set with values", "constants:\n  s: !!set {a: 1}\n", "constants.s.a", 2, "a !!set has keys only"},
	{"nested error path", "list:\n  - {a: 1}\n  - {opts: {sizes: [1, 2, 2024-01-01]}}\n", "list[1].opts.sizes[2]", 3, "dates and times"},
	{"odd key path", "constants:\n  d: {\"my key\": {x: 2024-01-01}}\n", `constants.d["my key"].x`, 2, "dates and times"},

	// Merge keys.
	{"merge scalar", "constants:\n  d: {<<: 5}\n", "constants.d", 2, `the merge key "<<" needs a mapping or a list of mappings, got the integer 5`},
	{"merge list of scalars", "constants:\n  d: {<<: [5]}\n", "constants.d", 2, `the merge key "<<" needs a mapping or a list of mappings, got the integer 5`},
	{"merge twice", "constants:\n  a: &a {x: 1}\n  d: {<<: *a, <<: *a}\n", "constants.d", 3, `duplicate merge key "<<"`},
	{"merge cycle", "constants:\n  d: &d {<<: *d}\n", "", 2, "alias *d is used inside its own anchor &d"},
	{"merged name clash", "constants: &c {x: 1}\nlist:\n  - {<<: *c, y: 2}\n", "list[0].x", 1, `parameter "x" is also defined in constants (line 1)`},

	// Aliases.
	{"alias cycle", "constants:\n  a: &a [1, *a]\n", "", 2, "alias *a is used inside its own anchor &a"},
	{"billion laughs", billionLaughs, "", 7, "aliases expand the spec by more than 1000000 values"},
	{"deep nesting", "constants:\n  a: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n", "", 2, "values nest more than 100 levels deep"},
	{"deep through aliases", "constants:\n  a: &a " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + "\n  b: " + strings.Repeat("[", 60) + "*a" + strings.Repeat("]", 60) + "\n", "", 3, "alias *a nests values more than 100 levels deep"},

	// Size.
	{"too many tasks", "grid:\n  a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  b: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  c: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nzip: {d: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\nlist: [{e: 1}, {e: 2}]\nrepeat: 100\n", "", 0, "the spec gives 2000000 tasks, more than the maximum of 1000000"},
	{"astronomically many tasks", "grid:\n" + manyParams(300), "", 0, "the spec gives about 10^90 tasks"},
}

// billionLaughs is the classic alias bomb: 10^9 values from a few lines.
const billionLaughs = `constants:
  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
  j: [*i, *i, *i, *i, *i, *i, *i, *i, *i, *i]
`

// manyParams returns n grid parameters of 2 values each.
func manyParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  p%d: [0, 1]\n", i)
	}
	return b.String()
}

func TestErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.spec))
			if s != nil {
				t.Errorf("Parse returned a spec with the error")
			}
			checkError(t, err, tt.field, tt.line, tt.fragment)
			_, err = Expand([]byte(tt.spec))
			checkError(t, err, tt.field, tt.line, tt.fragment)
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Field: "grid.radius", Line: 4, Msg: "must be a list of values, got a mapping"},
			"sweep spec: line 4: grid.radius: must be a list of values, got a mapping"},
		{Error{Line: 2, Msg: "bad"}, "sweep spec: line 2: bad"},
		{Error{Field: "list[3].sigma", Msg: "bad"}, "sweep spec: list[3].sigma: bad"},
		{Error{Msg: "two\nlines"}, "sweep spec: two lines"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestValuesShareAliases(t *testing.T) {
	// An alias shares its value, so a bomb that stays under the limit does
	// not multiply memory.
	s, err := Parse([]byte("constants:\n  a: &a [1, 2]\n  b: *a\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := s.Tasks()[0].Params
	a, _ := p.Get("a")
	b, _ := p.Get("b")
	if &a.([]any)[0] != &b.([]any)[0] {
		t.Error("alias value was copied")
	}
}
