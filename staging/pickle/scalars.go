package pickle

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxIntDigits caps decimal integers in text opcodes, as Python's
// int(str) does by default.
const maxIntDigits = 4300

// loadInt implements the integer opcodes.
func (d *decoder) loadInt(op byte) error {
	switch op {
	case opInt, opLong:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		s := strings.TrimSpace(string(line))
		if op == opInt && (s == "00" || s == "01") {
			d.push(s == "01") // protocol 0 spells False and True as I00 and I01
			return nil
		}
		if op == opLong {
			s = strings.TrimSuffix(s, "L")
		}
		v, err := parseDecimal(s)
		if err != nil {
			return d.errorf("%v", err)
		}
		d.push(v)
	case opBinInt:
		u, err := d.readUint(4)
		if err != nil {
			return err
		}
		d.push(int64(int32(uint32(u))))
	case opBinInt1:
		u, err := d.readUint(1)
		if err != nil {
			return err
		}
		d.push(int64(u))
	case opBinInt2:
		u, err := d.readUint(2)
		if err != nil {
			return err
		}
		d.push(int64(u))
	case opLong1, opLong4:
		width := 1
		if op == opLong4 {
			width = 4
		}
		n, err := d.readUint(width)
		if err != nil {
			return err
		}
		if op == opLong4 && int32(uint32(n)) < 0 {
			return d.errorf("negative byte count")
		}
		b, err := d.read(n)
		if err != nil {
			return err
		}
		d.push(decodeLong(b))
	}
	return nil
}

// parseDecimal parses an optionally signed decimal integer into an int64,
// or a *big.Int when it does not fit.
func parseDecimal(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if len(strings.TrimLeft(s, "+-")) > maxIntDigits {
		return nil, fmt.Errorf("integer has more than %d digits", maxIntDigits)
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("invalid integer %s", quoteShort(s))
	}
	return normInt(x), nil
}

// parseFloat parses a float as Python's float() does; out-of-range values
// become ±Inf or 0 as in Python.
func parseFloat(s string) (float64, error) {
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("invalid float %s", quoteShort(s))
	}
	return f, nil
}

// parseIndex parses the decimal memo index of PUT and GET.
func parseIndex(line []byte) (uint64, error) {
	s := strings.TrimSpace(string(line))
	i, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid memo index %s", quoteShort(s))
	}
	return i, nil
}

// decodeLong decodes a little-endian two's complement integer.
func decodeLong(b []byte) any {
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if len(b) == 0 {
			return int64(0)
		}
		shift := uint(64 - 8*len(b))
		return int64(u<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(x)
}

// normInt returns x as an int64 when it fits.
func normInt(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

// loadString implements the str opcodes. Python 2 str (STRING,
// BINSTRING, SHORT_BINSTRING) decodes to a Go string holding its bytes.
func (d *decoder) loadString(op byte) error {
	var b []byte
	var err error
	switch op {
	case opString:
		if b, err = d.readLine(); err != nil {
			return err
		}
		b = bytes.TrimRight(b, "\r")
		if len(b) < 2 || b[0] != b[len(b)-1] || (b[0] != '\'' && b[0] != '"') {
			return d.errorf("argument must be quoted")
		}
		if b, err = escapeDecode(b[1 : len(b)-1]); err != nil {
			return d.errorf("%v", err)
		}
	case opBinString:
		var n uint64
		if n, err = d.readUint(4); err != nil {
			return err
		}
		if int32(uint32(n)) < 0 {
			return d.errorf("negative length")
		}
		b, err = d.read(n)
	case opShortBinString, opShortBinUnicode:
		b, err = d.readSized(1)
	case opBinUnicode:
		b, err = d.readSized(4)
	case opBinUnicode8:
		b, err = d.readSized(8)
	case opUnicode:
		if b, err = d.readLine(); err != nil {
			return err
		}
		s, err := rawUnicodeEscape(b)
		if err != nil {
			return d.errorf("%v", err)
		}
		d.push(s)
		return nil
	}
	if err != nil {
		return err
	}
	d.push(string(b))
	return nil
}

// loadBytes implements the bytes and bytearray opcodes.
func (d *decoder) loadBytes(op byte) error {
	width := 8
	switch op {
	case opShortBinBytes:
		width = 1
	case opBinBytes:
		width = 4
	}
	b, err := d.readSized(width)
	if err != nil {
		return err
	}
	d.push(bytes.Clone(b))
	return nil
}

// escapeDecode undoes the escapes of a Python 2 str repr, as
// codecs.escape_decode does.
func escapeDecode(s []byte) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return nil, errors.New(`string ends with \`)
		}
		switch c = s[i]; c {
		case '\n':
		case '\\', '\'', '"':
			out = append(out, c)
		case 'a':
			out = append(out, '\a')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, '\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; n++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			out = append(out, byte(v))
		case 'x':
			if i+2 >= len(s) {
				return nil, errors.New(`truncated \x escape`)
			}
			v, err := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, errors.New(`invalid \x escape`)
			}
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, '\\', c)
		}
	}
	return out, nil
}

// rawUnicodeEscape decodes Python's raw-unicode-escape codec: bytes are
// Latin-1 characters except for \uXXXX and \UXXXXXXXX escapes after an odd
// number of backslashes.
func rawUnicodeEscape(s []byte) (string, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			out = appendWTF8(out, rune(s[i]))
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '\\' {
			out = append(out, '\\')
			j++
		}
		odd := (j-i)%2 == 1
		i = j
		if !odd || i == len(s) || (s[i] != 'u' && s[i] != 'U') {
			continue
		}
		out = out[:len(out)-1] // that backslash starts the escape
		n := 4
		if s[i] == 'U' {
			n = 8
		}
		i++
		if len(s)-i < n {
			return "", fmt.Errorf(`truncated \%c escape`, s[i-1])
		}
		v, err := strconv.ParseUint(string(s[i:i+n]), 16, 32)
		if err != nil || v > utf8.MaxRune {
			return "", fmt.Errorf(`invalid \%c escape`, s[i-1])
		}
		out = appendWTF8(out, rune(v))
		i += n
	}
	return string(out), nil
}

// appendWTF8 appends r in UTF-8, encoding surrogate code points as their
// three-byte sequence, as Python's "surrogatepass" error handler does.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// quoteShort quotes s for an error message, eliding the middle of long
// strings.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max/2] + "..." + s[len(s)-max/2:]
	}
	return strconv.Quote(s)
}
