package pickle

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/slicerburst/burst/internal/testpy"
)

// runPython runs script with stdin and returns its standard output.
func runPython(t testing.TB, script string, stdin []byte) []byte {
	t.Helper()
	py := testpy.Python(t)
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s failed: %v\n%s\n(if the interpreter is missing or lacks numpy, run scripts/setup-python.sh)", py, err, stderr.String())
	}
	return out
}

// diff describes how got differs from want, or returns "" if they are the
// same value. Sets compare regardless of order, NaN equals NaN, and 0.0
// differs from -0.0.
func diff(got, want any) string {
	return diffAt("", got, want)
}

func diffAt(path string, got, want any) string {
	mismatch := func() string {
		return fmt.Sprintf("at %s: got %T %s, want %T %s", pathOrRoot(path), got, short(got), want, short(want))
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return mismatch()
		}
	case float64:
		g, ok := got.(float64)
		if !ok || !sameFloat(g, w) {
			return mismatch()
		}
	case complex128:
		g, ok := got.(complex128)
		if !ok || !sameFloat(real(g), real(w)) || !sameFloat(imag(g), imag(w)) {
			return mismatch()
		}
	case *big.Int:
		g, ok := got.(*big.Int)
		if !ok || g.Cmp(w) != 0 {
			return mismatch()
		}
	case []byte:
		g, ok := got.([]byte)
		if !ok || !bytes.Equal(g, w) {
			return mismatch()
		}
	case Tuple:
		g, ok := got.(Tuple)
		if !ok {
			return mismatch()
		}
		return diffSlices(path, g, w)
	case []any:
		g, ok := got.([]any)
		if !ok {
			return mismatch()
		}
		return diffSlices(path, g, w)
	case Set:
		g, ok := got.(Set)
		if !ok || len(g) != len(w) {
			return mismatch()
		}
		used := make([]bool, len(g))
	next:
		for _, wv := range w {
			for i, gv := range g {
				if !used[i] && diff(gv, wv) == "" {
					used[i] = true
					continue next
				}
			}
			return mismatch()
		}
	case *Dict:
		g, ok := got.(*Dict)
		if !ok || g.Len() != w.Len() {
			return mismatch()
		}
		for i := range w.keys {
			p := fmt.Sprintf("%s[%s]", path, pyRepr(w.keys[i]))
			if d := diffAt(p+"(key)", g.keys[i], w.keys[i]); d != "" {
				return d
			}
			if d := diffAt(p, g.vals[i], w.vals[i]); d != "" {
				return d
			}
		}
	case *NDArray:
		g, ok := got.(*NDArray)
		if !ok || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || g.Fortran != w.Fortran ||
			!bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
			return mismatch()
		}
		return diffSlices(path+".Objects", g.Objects, w.Objects)
	case *Object:
		g, ok := got.(*Object)
		if !ok || g.Module != w.Module || g.Name != w.Name {
			return mismatch()
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{".Args", g.Args, w.Args}, {".ListItems", g.ListItems, w.ListItems},
		} {
			if d := diffSlices(path+c.name, c.got.([]any), c.want.([]any)); d != "" {
				return d
			}
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{".Kwargs", g.Kwargs, w.Kwargs}, {".DictItems", g.DictItems, w.DictItems}, {".State", g.State, w.State},
		} {
			if d := diffAt(path+c.name, nilDict(c.got), nilDict(c.want)); d != "" {
				return d
			}
		}
	default:
		if reflect.TypeOf(got) != reflect.TypeOf(want) || !reflect.DeepEqual(got, want) {
			return mismatch()
		}
	}
	return ""
}

// nilDict turns a nil *Dict into an untyped nil.
func nilDict(v any) any {
	if d, ok := v.(*Dict); ok && d == nil {
		return nil
	}
	return v
}

func diffSlices(path string, got, want []any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("at %s: got %d items %s, want %d items %s", pathOrRoot(path), len(got), short(got), len(want), short(want))
	}
	for i := range want {
		if d := diffAt(fmt.Sprintf("%s[%d]", path, i), got[i], want[i]); d != "" {
			return d
		}
	}
	return ""
}

func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b && math.Signbit(a) == math.Signbit(b)
}

func pathOrRoot(p string) string {
	if p == "" {
		return "top level"
	}
	return p
}

func short(v any) string {
	var s string
	switch x := v.(type) {
	case *NDArray:
		s = fmt.Sprintf("{%s %v fortran=%v data=%x objects=%s}", x.DType, x.Shape, x.Fortran, x.Data, pyRepr(x.Objects))
	case *Object:
		s = fmt.Sprintf("{%s.%s args=%s state=%s}", x.Module, x.Name, pyRepr(x.Args), pyRepr(x.State))
	default:
		s = pyRepr(v)
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// dict builds a *Dict from alternating keys and values.
func dict(kv ...any) *Dict {
	d := NewDict()
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

// le encodes numbers as little-endian bytes of their Go types.
func le(vals ...any) []byte {
	var b bytes.Buffer
	for _, v := range vals {
		if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
			panic(err)
		}
	}
	if b.Len() == 0 {
		return []byte{}
	}
	return b.Bytes()
}

func f64s(vals ...float64) []byte { return le(slices.Clone(vals)) }

// utf32 encodes strings as numpy's fixed-width <U data of width chars.
func utf32(width int, strs ...string) []byte {
	var b []byte
	for _, s := range strs {
		rs := []rune(s)
		for i := 0; i < width; i++ {
			var r rune
			if i < len(rs) {
				r = rs[i]
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(r))
		}
	}
	return b
}

func bigInt(s string) *big.Int {
	x, ok := new(big.Int).SetString(strings.ReplaceAll(s, "_", ""), 0)
	if !ok {
		panic("bad big int " + s)
	}
	return x
}

// records encodes byte strings as a stream of little-endian uint32 lengths,
// each followed by its bytes: how the tests exchange many pickles with one
// Python process.
func records(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

// parseRecords splits a stream written by records (or by the Python
// scripts' rec function).
func parseRecords(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("record stream: %d stray bytes at the end", len(b))
		}
		n := binary.LittleEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			t.Fatalf("record stream: record of %d bytes, %d left", n, len(b)-4)
		}
		recs = append(recs, b[4:4+n])
		b = b[4+n:]
	}
	return recs
}

// pyRecordHelpers is Python source for reading and writing record streams.
const pyRecordHelpers = `
import struct, sys

def read_records(b):
    recs, i = [], 0
    while i < len(b):
        (n,) = struct.unpack_from('<I', b, i)
        recs.append(b[i + 4:i + 4 + n])
        i += 4 + n
    return recs

_out = sys.stdout.buffer

def rec(b):
    if isinstance(b, str):
        b = b.encode('utf-8', 'surrogatepass')
    _out.write(struct.pack('<I', len(b)))
    _out.write(b)
`

// jsonText marshals v with encoding/json, failing the test on error.
func jsonText(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

// jsonTokens returns the tokens of a JSON text, keeping object key order
// and numbers as written (json.Number), so that two texts compare equal
// exactly when they hold the same values spelled the same way, whatever
// their whitespace and string escapes.
func jsonTokens(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var toks []any
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return nil, fmt.Errorf("invalid JSON %q: %v", s, err)
		}
		toks = append(toks, tok)
	}
}

// diffJSON describes how the JSON text got differs from want, or returns ""
// if they are the same.
func diffJSON(got, want string) string {
	g, err := jsonTokens(got)
	if err != nil {
		return err.Error()
	}
	w, err := jsonTokens(want)
	if err != nil {
		panic(err) // a mistake in the test's expectation
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("got  %s\nwant %s", got, want)
	}
	return ""
}
