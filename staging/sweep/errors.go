package sweep

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error describes what is wrong with a sweep spec. Parse and Expand return
// all their errors as *Error.
type Error struct {
	// Field is the dotted path of the offending entry, such as "grid.radius",
	// "list[3].sigma" or "constants.opts.size". List indexes count from 0.
	// It is empty when the problem is not tied to one entry.
	Field string
	// Line is the 1-based line of the offending text, or 0 when unknown.
	Line int
	// Msg says what is wrong, and usually how to fix it.
	Msg string
}

// Error returns the error on one line, for example
//
//	sweep spec: line 4: grid.radius: must be a list of values, got a mapping
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sweep spec: ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return oneLine(b.String())
}

// oneLine replaces line breaks so that s prints as a single line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// yamlErrorRE splits an error from the YAML parser into its line and message.
var yamlErrorRE = regexp.MustCompile(`(?s)^yaml: (?:line (\d+): )?(.*)$`)

// unknownAnchorRE matches the parser's message for an alias without anchor.
var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// parseDocument parses data as a single YAML document and returns the
// document's root node (never a DocumentNode). It returns nil and no error
// when the document is empty (no content, or only a null).
func parseDocument(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML parser reports malformed input by its own panics, which
		// it recovers; anything else escaping it is turned into an error too.
		if r := recover(); r != nil {
			root = nil
			err = &Error{Msg: fmt.Sprintf("invalid YAML: the YAML parser failed (%s)", clip(fmt.Sprint(r), 80))}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "the file is empty; expected a mapping with at least one of " + sectionList}
		}
		return nil, yamlError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(err, data)
	default:
		return nil, &Error{Line: next.Line, Msg: "the file holds several YAML documents; a sweep spec must be a single document (remove the '---' separator)"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{Msg: "invalid YAML: no document found"}
	}
	return doc.Content[0], nil
}

// yamlError converts an error from the YAML parser to an *Error.
func yamlError(err error, data []byte) *Error {
	m := yamlErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{Msg: "invalid YAML: " + clip(err.Error(), 200)}
	}
	msg := m[2]
	if a := unknownAnchorRE.FindStringSubmatch(msg); a != nil {
		name := clip(a[1], 40)
		return &Error{
			Line: aliasLine(data, a[1]),
			Msg:  fmt.Sprintf("alias *%s refers to no anchor; define &%s before it is used", name, name),
		}
	}
	line := yamlErrorLine(m[1], msg, data)
	// Errors found at the end of the input are shown on its last line.
	if n := lineCount(data); line > n {
		line = n
	}
	return &Error{Line: line, Msg: "invalid YAML: " + clip(msg, 200)}
}

// lineCount returns the number of lines of data, counting a last line
// without a line break.
func lineCount(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// parserProblems are the messages of the YAML parser proper, as opposed to
// its scanner and reader; see yamlErrorLine.
var parserProblems = []string{
	"did not find expected",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
	"expected ",
}

// readerProblems are the messages of the YAML reader, which checks the
// encoding and gives no line.
var readerProblems = []string{
	"invalid leading UTF-8 octet",
	"incomplete UTF-8 octet sequence",
	"invalid trailing UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid Unicode character",
	"control characters are not allowed",
}

// yamlErrorLine returns the 1-based line of a YAML error, given the line the
// parser printed (possibly "") and its message. The scanner prints 1-based
// lines; the parser prints 0-based ones; both leave the line out for line 0.
// The reader gives none, so the offending character is searched for.
func yamlErrorLine(printed, msg string, data []byte) int {
	for _, p := range readerProblems {
		if msg == p {
			return badCharLine(data)
		}
	}
	line, _ := strconv.Atoi(printed)
	if printed == "" {
		return 1
	}
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) && !scannerProblem(msg) {
			return line + 1
		}
	}
	return line
}

// scannerProblem reports whether msg is one of the scanner's messages that
// share a prefix with the parser's.
func scannerProblem(msg string) bool {
	switch msg {
	case "did not find expected '!'",
		"did not find expected alphabetic or numeric character",
		"did not find expected comment or line break",
		"did not find expected digit or '.' character",
		"did not find expected hexdecimal number",
		"did not find expected tag URI",
		"did not find expected version number",
		"did not find expected whitespace or line break",
		"did not find expected whitespace":
		return true
	}
	return false
}

// badCharLine returns the 1-based line of the first byte sequence of data
// that is not valid UTF-8 or not a character YAML allows, or 0.
func badCharLine(data []byte) int {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return 0 // UTF-16
	}
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || !yamlChar(r) {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return 0
}

// yamlChar reports whether YAML allows r in a document.
func yamlChar(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// aliasLine returns the 1-based line of the first "*name" alias in data,
// or 0 when none is found. It is a best-effort search of the raw text.
func aliasLine(data []byte, name string) int {
	pat := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(data[off:], pat)
		if i < 0 {
			return 0
		}
		i += off
		end := i + len(pat)
		if end == len(data) || bytes.IndexByte([]byte(" \t\r\n,[]{}"), data[end]) >= 0 {
			return bytes.Count(data[:i], []byte("\n")) + 1
		}
		off = i + 1
	}
}

// clip shortens s to at most n runes, marking the cut with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}
