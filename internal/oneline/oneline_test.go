package oneline

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           "plain",
		"a\nb\r\tc":       "a b  c",
		"x\u2028y\u0085z": "x y z",
		"bad \xff utf-8":  "bad \uFFFD utf-8",
		"\x1b[31mred\x7f": " [31mred ",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("a\nb"); got != `"a\nb"` {
		t.Errorf("Quote = %s", got)
	}
	long := strings.Repeat("é", 100)
	got := Quote(long)
	if want := `"` + strings.Repeat("é", 61) + `..."`; got != want {
		t.Errorf("Quote(long) = %s", got)
	}
	if got := Quote(strings.Repeat("x", 64)); strings.Contains(got, "...") {
		t.Errorf("Quote of 64 characters was shortened: %s", got)
	}
}

func TestClip(t *testing.T) {
	if got := Clip("abcdef", 3); got != "abc..." {
		t.Errorf("Clip = %q", got)
	}
	if got := Clip("abc", 3); got != "abc" {
		t.Errorf("Clip = %q", got)
	}
}

// FuzzClean: whatever the input, Clean's output is one line of valid UTF-8.
func FuzzClean(f *testing.F) {
	f.Add("a\nb")
	f.Add("\xff\u2029")
	f.Fuzz(func(t *testing.T, s string) {
		out := Clean(Clip(s, 200))
		if strings.ContainsAny(out, "\r\n") || !utf8.ValidString(out) {
			t.Fatalf("Clean(%q) = %q", s, out)
		}
	})
}
