package pickle

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pyStr renders v as Python's str() would. It names dict keys in JSON.
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// pyRepr renders v as Python's repr() would, for the values that can be
// dict keys; others get a short description.
func pyRepr(v any) string {
	var b strings.Builder
	writeRepr(&b, v, 0)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, depth int) {
	if depth > maxDepth {
		b.WriteString("...")
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case *big.Int:
		if x == nil {
			b.WriteString("None")
			return
		}
		b.WriteString(x.String())
	case float64:
		b.WriteString(floatRepr(x))
	case complex128:
		b.WriteString(complexRepr(x))
	case string:
		writeQuoted(b, x, false)
	case []byte:
		b.WriteByte('b')
		writeQuoted(b, string(x), true)
	case Tuple:
		b.WriteByte('(')
		writeItems(b, x, depth)
		if len(x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case []any:
		b.WriteByte('[')
		writeItems(b, x, depth)
		b.WriteByte(']')
	case Set:
		// Only frozensets can be dict keys.
		b.WriteString("frozenset(")
		if len(x) > 0 {
			b.WriteByte('{')
			writeItems(b, x, depth)
			b.WriteByte('}')
		}
		b.WriteByte(')')
	case *Dict:
		b.WriteByte('{')
		for i, k := range x.Keys() {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, k, depth+1)
			b.WriteString(": ")
			writeRepr(b, x.vals[i], depth+1)
		}
		b.WriteByte('}')
	case *Object:
		fmt.Fprintf(b, "<%s.%s object>", x.Module, x.Name)
	case *NDArray:
		fmt.Fprintf(b, "<numpy.ndarray %s %v>", x.DType, x.Shape)
	default:
		if s, ok := normalizeScalar(v); ok {
			writeRepr(b, s, depth)
			return
		}
		fmt.Fprintf(b, "<%T>", v)
	}
}

func writeItems(b *strings.Builder, items []any, depth int) {
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		writeRepr(b, it, depth+1)
	}
}

// floatRepr formats f as Python's repr(float): the shortest digits that
// round-trip, in positional notation with at least one decimal when the
// decimal exponent is in [-4, 16), in scientific notation otherwise.
func floatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	digits, exp := shortestDigits(f)
	sign := ""
	if math.Signbit(f) {
		sign = "-"
	}
	decpt := exp + 1 // f = 0.digits × 10^decpt
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			return sign + "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			return sign + digits[:decpt] + "." + digits[decpt:]
		}
	}
	return sign + sciRepr(digits, exp)
}

// shortestDigits returns the shortest decimal digits that identify |f|
// and the exponent of the first: |f| = d.ddd × 10^exp.
func shortestDigits(f float64) (string, int) {
	s := strconv.FormatFloat(math.Abs(f), 'e', -1, 64)
	mant, e, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(e)
	return strings.Replace(mant, ".", "", 1), exp
}

func sciRepr(digits string, exp int) string {
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es, exp = "-", -exp
	}
	return fmt.Sprintf("%se%s%02d", m, es, exp)
}

// complexRepr formats c as Python's repr(complex): "(1+2j)", or "2j"
// when the real part is +0.
func complexRepr(c complex128) string {
	part := func(f float64) string {
		s := floatRepr(f)
		return strings.TrimSuffix(s, ".0")
	}
	re, im := real(c), imag(c)
	ims := part(im)
	if !strings.HasPrefix(ims, "-") {
		ims = "+" + ims
	}
	if re == 0 && !math.Signbit(re) {
		return strings.TrimPrefix(ims, "+") + "j"
	}
	return "(" + part(re) + ims + "j)"
}

// writeQuoted writes s quoted and escaped as Python's repr does for str,
// or for bytes when isBytes is set.
func writeQuoted(b *strings.Builder, s string, isBytes bool) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if !isBytes {
			r, size = decodeWTF8Rune(s[i:])
		}
		i += size
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f || (isBytes && r > 0x7f):
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x7f || (unicode.IsPrint(r) && r != utf8.RuneError):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
}

// decodeWTF8Rune decodes the first character of s, accepting the
// three-byte encodings of surrogates that Python strings may hold. Invalid
// bytes decode as U+FFFD, one byte at a time.
func decodeWTF8Rune(s string) (rune, int) {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size == 1 && len(s) >= 3 && s[0] == 0xED &&
		s[1] >= 0xA0 && s[1] <= 0xBF && s[2] >= 0x80 && s[2] <= 0xBF {
		return rune(s[0]&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	}
	return r, size
}

// validPyString reports whether s is UTF-8, allowing encoded surrogates,
// which is what Python decodes pickled strings with.
func validPyString(s string) bool {
	if utf8.ValidString(s) {
		return true
	}
	for i := 0; i < len(s); {
		r, size := decodeWTF8Rune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	return true
}
