// Package oneline fits text from outside (a value read from a file, a
// program's output) into a one-line error message.
package oneline

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Clean makes s printable on one line: newlines and other control
// characters become spaces, and invalid UTF-8 is replaced.
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// Quote quotes a value for an error message, Go-escaped and shortened to
// 64 characters.
func Quote(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		r := []rune(s)
		s = string(r[:61]) + "..."
	}
	return strconv.Quote(s)
}

// Clip shortens s to its first n bytes and "...", when it is longer.
func Clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
