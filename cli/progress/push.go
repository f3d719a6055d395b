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

// PushDisplay consumes the progress messages of one push.
type PushDisplay interface {
	Update(p *skiffv1.PushProgress)
	Close()
}

// NewPush returns a bar display for a terminal, plain lines otherwise.
func NewPush(w io.Writer, tty bool) PushDisplay {
	if tty {
		return &pushBars{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(50), mpb.WithAutoRefresh()), bars: map[string]*layerBar{}}
	}
	return &pushPlain{w: w, last: map[string]string{}}
}

// PushStatusText is docker's wording for a skiff push status.
func PushStatusText(status string) string {
	switch status {
	case "waiting", "preparing":
		return "Preparing"
	case "pushing":
		return "Pushing"
	case "exists":
		return "Layer already exists"
	case "mounted":
		return "Mounted from another repository"
	case "pushed":
		return "Pushed"
	case "failed":
		return "Failed"
	}
	if status == "" {
		return ""
	}
	return strings.ToUpper(status[:1]) + status[1:]
}

// pushShown: docker shows the layers of a push.
func pushShown(p *skiffv1.PushProgress) bool {
	return p.GetId() != "" && p.GetKind() == "layer"
}

type pushPlain struct {
	w    io.Writer
	last map[string]string
}

func (d *pushPlain) Update(p *skiffv1.PushProgress) {
	if !pushShown(p) || d.last[p.GetId()] == p.GetStatus() {
		return
	}
	d.last[p.GetId()] = p.GetStatus()
	fmt.Fprintln(d.w, ShortID(p.GetId())+": "+PushStatusText(p.GetStatus()))
}

func (d *pushPlain) Close() {}

type pushBars struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*layerBar
}

func (d *pushBars) Update(p *skiffv1.PushProgress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !pushShown(p) {
		return
	}
	lb := d.bars[p.GetId()]
	if lb == nil {
		lb = &layerBar{}
		lb.bar = d.p.AddBar(0,
			mpb.PrependDecorators(
				decor.Name(ShortID(p.GetId())+":", decor.WC{C: decor.DindentRight | decor.DextraSpace}),
				decor.Any(func(decor.Statistics) string {
					lb.mu.Lock()
					defer lb.mu.Unlock()
					return PushStatusText(lb.status)
				}, decor.WC{W: 22, C: decor.DindentRight}),
			),
			mpb.AppendDecorators(decor.OnComplete(decor.CountersKiloByte("% .1f / % .1f"), "")),
		)
		d.bars[p.GetId()] = lb
	}
	lb.mu.Lock()
	lb.status = p.GetStatus()
	lb.mu.Unlock()
	switch p.GetStatus() {
	case "pushing":
		if p.GetTotal() > 0 {
			lb.bar.SetTotal(p.GetTotal(), false)
		}
		lb.bar.SetCurrent(p.GetCurrent())
	case "exists", "mounted", "pushed":
		lb.bar.SetTotal(-1, true)
	case "failed":
		lb.bar.Abort(false)
	}
}

func (d *pushBars) Close() {
	d.mu.Lock()
	for _, lb := range d.bars {
		if !lb.bar.AbortedOrCompleted() {
			lb.bar.SetTotal(-1, true)
		}
	}
	d.mu.Unlock()
	d.p.Wait()
}
