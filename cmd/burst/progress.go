package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/slicerburst/burst/provision"
)

// counts is what the progress display shows.
type counts struct {
	Total, OK, Failed, Running int
	// Cloud runs also show their instances and the dollars spent so far.
	Cloud     bool
	Instances int
	Spent     float64
	// Hosts, when set, says where the workers are: "here 2, lab1 4".
	Hosts string
}

func (c counts) done() int   { return c.OK + c.Failed }
func (c counts) queued() int { return max(0, c.Total-c.done()-c.Running) }

// progressView draws progress: a live bar redrawn in place on a terminal,
// else a plain line now and then.
type progressView struct {
	w        io.Writer
	tty      bool
	width    int
	every    time.Duration // plain-line interval
	start    time.Time
	baseDone int // tasks already done when this view started (resume)
	last     time.Time
	drawn    bool
	lastLine string
}

func newProgressView(w io.Writer, tty bool, width int, baseDone int) *progressView {
	return &progressView{w: w, tty: tty, width: width, every: 10 * time.Second, start: time.Now(), baseDone: baseDone}
}

// rate returns tasks per second finished since the view started, and the
// estimated time left.
func (p *progressView) rate(c counts, now time.Time) (float64, time.Duration) {
	el := now.Sub(p.start).Seconds()
	n := c.done() - p.baseDone
	if el <= 0 || n <= 0 {
		return 0, -1
	}
	r := float64(n) / el
	left := c.Total - c.done()
	return r, time.Duration(float64(left) / r * float64(time.Second))
}

func (p *progressView) line(c counts, now time.Time) string {
	r, eta := p.rate(c, now)
	etaS := "ETA --"
	if eta >= 0 {
		etaS = "ETA " + fmtDuration(eta)
	}
	text := fmt.Sprintf("%d/%d done · %d running · %d failed · %d queued · %.1f tasks/s · %s",
		c.done(), c.Total, c.Running, c.Failed, c.queued(), r, etaS)
	if c.Cloud {
		text += fmt.Sprintf(" · %s · %s", countOf(c.Instances, "instance"), provision.FormatDollars(c.Spent))
	}
	if c.Hosts != "" {
		text += " · workers: " + c.Hosts
	}
	return text
}

// Note prints a line of its own to w (stderr), above the bar on a
// terminal.
func (p *progressView) Note(w io.Writer, line string) {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(w, line)
}

// Update shows c: redrawn at once on a terminal, else printed when the
// interval has passed.
func (p *progressView) Update(c counts) {
	now := time.Now()
	text := p.line(c, now)
	if !p.tty {
		if now.Sub(p.last) >= p.every && text != p.lastLine {
			fmt.Fprintf(p.w, "progress: %s\n", text)
			p.last, p.lastLine = now, text
		}
		return
	}
	barW := max(10, min(30, p.width-len([]rune(text))-4))
	fill := 0
	if c.Total > 0 {
		fill = c.done() * barW / c.Total
	}
	bar := strings.Repeat("█", fill) + strings.Repeat("░", barW-fill)
	out := bar + " " + text
	if rs := []rune(out); len(rs) > p.width-1 {
		out = string(rs[:p.width-1])
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", out)
	p.drawn = true
}

// Done ends the display, leaving the last state on its own line.
func (p *progressView) Done(c counts) {
	if p.tty {
		if p.drawn {
			fmt.Fprint(p.w, "\r\x1b[K")
		}
		return
	}
	if text := p.line(c, time.Now()); text != p.lastLine {
		fmt.Fprintf(p.w, "progress: %s\n", text)
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// countOf writes n things: "1 instance", "3 instances".
func countOf(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
