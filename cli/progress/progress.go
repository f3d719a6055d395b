// Package progress renders the progress of an image pull the way docker
// does: one bar per layer on a terminal (with mpb), and on anything else one
// plain line per layer each time its status changes
// ("abcdef012345: Downloading 1.2MB/3.4MB").
//
// It only renders skiff.v1 PullProgress messages; it must not talk to the
// daemon, and it keeps no state beyond the Display it returns.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// Display consumes the progress messages of one pull.
type Display interface {
	// Update renders one message.
	Update(p *skiffv1.PullProgress)
	// Close finishes the display and waits until it is drawn.
	Close()
	// Downloaded reports whether anything was fetched (docker's
	// "Downloaded newer image" rather than "Image is up to date").
	Downloaded() bool
}

// New returns a bar display for a terminal, a plain one otherwise.
func New(w io.Writer, tty bool) Display {
	if tty {
		return NewBars(w)
	}
	return NewPlain(w)
}

// ShortID is the 12 hex digits docker shows for a blob.
func ShortID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// StatusText is docker's wording for a skiff pull status.
func StatusText(status string) string {
	switch status {
	case "resolving":
		return "Resolving"
	case "waiting":
		return "Pulling fs layer"
	case "downloading":
		return "Downloading"
	case "verifying":
		return "Verifying Checksum"
	case "done":
		return "Download complete"
	case "exists":
		return "Already exists"
	case "extracting":
		return "Extracting"
	case "extracted":
		return "Pull complete"
	case "failed":
		return "Failed"
	}
	if status == "" {
		return ""
	}
	return strings.ToUpper(status[:1]) + status[1:]
}

// HumanSize is docker's units.HumanSizeWithPrecision(size, 3).
func HumanSize(size float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for size >= 1000 && i < len(units)-1 {
		size /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", size, units[i])
}

// shown reports whether a message is about a layer (docker shows only
// layers, and says "Image is up to date" when no layer was fetched).
func shown(p *skiffv1.PullProgress) bool {
	return p.GetId() != "" && (p.GetKind() == "layer" || p.GetKind() == "")
}

func fetched(status string) bool {
	switch status {
	case "downloading", "verifying", "done", "extracting", "extracted":
		return true
	}
	return false
}

// Plain prints a line per layer status change.
type Plain struct {
	w          io.Writer
	last       map[string]string
	downloaded bool
}

// NewPlain returns a display writing plain lines to w.
func NewPlain(w io.Writer) *Plain {
	return &Plain{w: w, last: map[string]string{}}
}

// Update prints p if its layer changed status.
func (d *Plain) Update(p *skiffv1.PullProgress) {
	if shown(p) && fetched(p.GetStatus()) {
		d.downloaded = true
	}
	if !shown(p) || d.last[p.GetId()] == p.GetStatus() {
		return
	}
	d.last[p.GetId()] = p.GetStatus()
	line := ShortID(p.GetId()) + ": " + StatusText(p.GetStatus())
	if p.GetStatus() == "downloading" && p.GetTotal() > 0 {
		line += fmt.Sprintf(" %s/%s", HumanSize(float64(p.GetCurrent())), HumanSize(float64(p.GetTotal())))
	}
	fmt.Fprintln(d.w, line)
}

// Close does nothing for plain output.
func (d *Plain) Close() {}

// Downloaded reports whether a blob was fetched.
func (d *Plain) Downloaded() bool { return d.downloaded }

// Bars draws one bar per layer with mpb.
type Bars struct {
	p          *mpb.Progress
	mu         sync.Mutex
	bars       map[string]*layerBar
	downloaded bool
}

type layerBar struct {
	bar    *mpb.Bar
	mu     sync.Mutex
	status string
}

func (l *layerBar) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return StatusText(l.status)
}

// NewBars returns a display drawing bars on the terminal w.
func NewBars(w io.Writer) *Bars {
	return &Bars{
		p:    mpb.New(mpb.WithOutput(w), mpb.WithWidth(50), mpb.WithAutoRefresh()),
		bars: map[string]*layerBar{},
	}
}

// Update moves the bar of p's layer.
func (d *Bars) Update(p *skiffv1.PullProgress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if shown(p) && fetched(p.GetStatus()) {
		d.downloaded = true
	}
	if !shown(p) {
		return
	}
	lb := d.bars[p.GetId()]
	if lb == nil {
		lb = &layerBar{}
		name := ShortID(p.GetId()) + ":"
		lb.bar = d.p.AddBar(0,
			mpb.PrependDecorators(
				decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
				decor.Any(func(decor.Statistics) string { return lb.text() }, decor.WC{W: 18, C: decor.DindentRight}),
			),
			mpb.AppendDecorators(
				decor.OnComplete(decor.CountersKiloByte("% .1f / % .1f"), ""),
			),
		)
		d.bars[p.GetId()] = lb
	}
	lb.mu.Lock()
	lb.status = p.GetStatus()
	lb.mu.Unlock()
	switch p.GetStatus() {
	case "downloading":
		if p.GetTotal() > 0 {
			lb.bar.SetTotal(p.GetTotal(), false)
		}
		lb.bar.SetCurrent(p.GetCurrent())
	case "verifying", "done", "extracting":
		lb.bar.SetTotal(-1, false)
		if p.GetTotal() > 0 {
			lb.bar.SetTotal(p.GetTotal(), false)
			lb.bar.SetCurrent(p.GetTotal())
		}
	case "exists", "extracted":
		lb.bar.SetTotal(-1, true)
	case "failed":
		lb.bar.Abort(false)
	}
}

// Close finishes the bars still running (at their current value) and
// waits for the last render.
func (d *Bars) Close() {
	d.mu.Lock()
	for _, lb := range d.bars {
		if !lb.bar.AbortedOrCompleted() {
			lb.bar.SetTotal(-1, true)
		}
	}
	d.mu.Unlock()
	d.p.Wait()
}

// Downloaded reports whether a blob was fetched.
func (d *Bars) Downloaded() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.downloaded
}
