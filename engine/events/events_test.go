package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ctrEvent(action, id, name, image string, extra ...string) Event {
	attrs := map[string]string{"name": name, "image": image}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	return Event{Namespace: "default", Type: TypeContainer, Action: action, Actor: Actor{ID: id, Attributes: attrs}}
}

func TestParseFilters(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    Filters
		wantErr string
	}{
		{args: nil, want: Filters{}},
		{args: []string{"event=die", "event=start", "event=die"}, want: Filters{"event": {"die", "start"}}},
		{args: []string{"type=image", "label=a=b"}, want: Filters{"type": {"image"}, "label": {"a=b"}}},
		{args: []string{"Container=web"}, want: Filters{"container": {"web"}}},
		{args: []string{"bogus=x"}, wantErr: "invalid filter 'bogus'"},
		{args: []string{"event"}, wantErr: "bad format of filter"},
		{args: []string{"=x"}, wantErr: "bad format of filter"},
		{args: []string{"type=plugin"}, wantErr: "invalid filter 'type=plugin'"},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			got, err := ParseFilters(tc.args)
			if tc.wantErr != "" {
				if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want an invalid argument saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFiltersMatch(t *testing.T) {
	die := ctrEvent(ActionDie, "abc123", "web", "busybox:latest", "exitCode", "3", "com.example", "x")
	execCreate := ctrEvent(ActionExecCreate+": sh -c date", "abc123", "web", "busybox")
	pull := Event{Type: TypeImage, Action: ActionPull, Actor: Actor{ID: "busybox:latest", Attributes: map[string]string{"name": "busybox:latest"}}}
	untag := Event{Type: TypeImage, Action: ActionUntag, Actor: Actor{ID: "sha256:feed", Attributes: map[string]string{"name": "127.0.0.1:5000/a/b:1"}}}
	netCreate := Event{Type: TypeNetwork, Action: ActionCreate, Actor: Actor{ID: "n0123", Attributes: map[string]string{"name": "front", "type": "bridge"}}}
	volDestroy := Event{Type: TypeVolume, Action: ActionDestroy, Actor: Actor{ID: "data", Attributes: map[string]string{"driver": "local"}}}
	for _, tc := range []struct {
		filters []string
		ev      Event
		want    bool
	}{
		{nil, die, true},
		{[]string{"event=die"}, die, true},
		{[]string{"event=start"}, die, false},
		{[]string{"event=start", "event=die"}, die, true},
		{[]string{"event=exec_create"}, execCreate, true},
		{[]string{"event=exec_die"}, execCreate, false},
		{[]string{"event=di"}, die, false}, // exact, unlike exec_*
		{[]string{"type=container"}, die, true},
		{[]string{"type=image"}, die, false},
		{[]string{"type=image"}, pull, true},
		{[]string{"type=image", "event=die"}, die, false},
		{[]string{"container=web"}, die, true},
		{[]string{"container=abc"}, die, true}, // id prefix
		{[]string{"container=db"}, die, false},
		{[]string{"container=web"}, pull, false},
		{[]string{"image=busybox"}, die, true}, // tag stripped
		{[]string{"image=busybox:latest"}, die, true},
		{[]string{"image=alpine"}, die, false},
		{[]string{"image=busybox"}, pull, true},
		{[]string{"image=sha256:feed"}, untag, true},
		{[]string{"image=127.0.0.1:5000/a/b"}, untag, true},
		{[]string{"image=127.0.0.1"}, untag, false},
		{[]string{"network=front"}, netCreate, true},
		{[]string{"network=n01"}, netCreate, true},
		{[]string{"network=back"}, netCreate, false},
		{[]string{"volume=data"}, volDestroy, true},
		{[]string{"volume=other"}, volDestroy, false},
		{[]string{"label=com.example"}, die, true},
		{[]string{"label=com.example=x"}, die, true},
		{[]string{"label=com.example=y"}, die, false},
		{[]string{"label=com.example", "label=missing"}, die, false}, // labels: all
		{[]string{"label=com.example"}, pull, false},
	} {
		t.Run(fmt.Sprint(tc.filters, " ", tc.ev.Action), func(t *testing.T) {
			f, err := ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Match(tc.ev); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

// next reads one event or fails.
func next(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

// nothing checks that no event is waiting.
func nothing(t *testing.T, s *Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if e, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %+v, %v; want nothing", e, err)
	}
}

func TestPublishStampsAndCopies(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x := New(Options{Now: clk.Now})
	s, err := x.Subscribe(context.Background(), SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := ctrEvent(ActionStart, "a", "web", "busybox")
	x.Publish(context.Background(), e)
	x.Publish(context.Background(), e) // same clock reading: still later
	e.Actor.Attributes["name"] = "changed"
	a, b := next(t, s), next(t, s)
	if a.Time != time.Unix(1000, 0).UnixNano() || b.Time != a.Time+1 {
		t.Errorf("times %d, %d: want %d and one more", a.Time, b.Time, time.Unix(1000, 0).UnixNano())
	}
	if a.Actor.Attributes["name"] != "web" {
		t.Errorf("the publisher's later change reached the event: %v", a.Actor.Attributes)
	}
}

func TestNamespaces(t *testing.T) {
	x := New(Options{})
	ctx := context.Background()
	def, _ := x.Subscribe(ctx, SubscribeOptions{Namespace: "default"})
	k8s, _ := x.Subscribe(ctx, SubscribeOptions{Namespace: "k8s.io"})
	all, _ := x.Subscribe(ctx, SubscribeOptions{})
	defer def.Close()
	defer k8s.Close()
	defer all.Close()
	x.Publish(ctx, Event{Namespace: "default", Type: TypeContainer, Action: "start", Actor: Actor{ID: "d"}})
	x.Publish(ctx, Event{Namespace: "k8s.io", Type: TypeContainer, Action: "start", Actor: Actor{ID: "k"}})
	x.Publish(ctx, Event{Type: TypeNetwork, Action: "create", Actor: Actor{ID: "n"}})
	for _, tc := range []struct {
		s    *Subscription
		want []string
	}{{def, []string{"d", "n"}}, {k8s, []string{"k", "n"}}, {all, []string{"d", "k", "n"}}} {
		for _, id := range tc.want {
			if e := next(t, tc.s); e.Actor.ID != id {
				t.Errorf("subscriber of %q got %s, want %s", tc.s.ns, e.Actor.ID, id)
			}
		}
		nothing(t, tc.s)
	}
}

func TestReplay(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	x := New(Options{Capacity: 4, Now: clk.Now})
	ctx := context.Background()
	var times []int64
	for i := range 6 { // the ring keeps the last 4: e2..e5
		x.Publish(ctx, ctrEvent(ActionStart, fmt.Sprintf("e%d", i), "web", "busybox"))
		times = append(times, clk.Now().UnixNano())
		clk.add(time.Second)
	}
	for _, tc := range []struct {
		name         string
		since, until int64
		filters      []string
		want         []string
		ends         bool // with io.EOF after the replay
	}{
		{name: "live only", want: nil},
		{name: "since the start", since: 1, want: []string{"e2", "e3", "e4", "e5"}},
		{name: "since e3", since: times[3], want: []string{"e3", "e4", "e5"}},
		{name: "since e3 until e4", since: times[3], until: times[4], want: []string{"e3", "e4"}, ends: true},
		{name: "until e3", until: times[3], want: []string{"e2", "e3"}, ends: true},
		{name: "since the future", since: times[5] + int64(time.Hour), want: nil},
		{name: "filtered", since: 1, filters: []string{"container=e4"}, want: []string{"e4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			s, err := x.Subscribe(ctx, SubscribeOptions{Since: tc.since, Until: tc.until, Filters: f})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, id := range tc.want {
				if e := next(t, s); e.Actor.ID != id {
					t.Fatalf("got %s, want %s", e.Actor.ID, id)
				}
			}
			if tc.ends {
				if _, err := s.Next(ctx); err != io.EOF {
					t.Fatalf("after the replay: %v, want io.EOF", err)
				}
				return
			}
			nothing(t, s)
		})
	}
	if _, err := x.Subscribe(ctx, SubscribeOptions{Since: times[4], Until: times[3]}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("since after until: %v, want invalid argument", err)
	}
}

// TestReplayThenLive: what was published before comes first, then what is
// published after, without a gap or a duplicate.
func TestReplayThenLive(t *testing.T) {
	x := New(Options{})
	ctx := context.Background()
	x.Publish(ctx, ctrEvent(ActionCreate, "a", "web", "busybox"))
	s, err := x.Subscribe(ctx, SubscribeOptions{Since: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x.Publish(ctx, ctrEvent(ActionStart, "a", "web", "busybox"))
	if a, b := next(t, s), next(t, s); a.Action != ActionCreate || b.Action != ActionStart {
		t.Errorf("got %s, %s; want create, start", a.Action, b.Action)
	}
	nothing(t, s)
}

func TestUntilEndsLiveStream(t *testing.T) {
	x := New(Options{})
	ctx := context.Background()
	until := time.Now().Add(300 * time.Millisecond).UnixNano()
	s, err := x.Subscribe(ctx, SubscribeOptions{Until: until})
	if err != nil {
		t.Fatal(err)
	}
	x.Publish(ctx, ctrEvent(ActionStart, "a", "web", "busybox"))
	if e := next(t, s); e.Actor.ID != "a" {
		t.Fatalf("got %+v", e)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Next(wctx); err != io.EOF {
		t.Fatalf("Next after until: %v, want io.EOF", err)
	}
	if now := time.Now().UnixNano(); now < until {
		t.Errorf("ended %s before until", time.Duration(until-now))
	}
	x.mu.Lock()
	n := len(x.subs)
	x.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscriptions left registered", n)
	}
}

// TestSlowSubscriber: a subscriber that does not read never blocks
// publishers; it gets what was queued, then ErrSlowSubscriber, while a
// reading subscriber gets everything.
func TestSlowSubscriber(t *testing.T) {
	x := New(Options{Buffer: 3})
	ctx := context.Background()
	slow, _ := x.Subscribe(ctx, SubscribeOptions{})
	fast, _ := x.Subscribe(ctx, SubscribeOptions{})
	defer fast.Close()
	done := make(chan error, 1)
	go func() {
		for i := range 10 {
			x.Publish(ctx, ctrEvent(ActionStart, fmt.Sprint(i), "web", "busybox"))
			// The reading subscriber keeps up: it reads each event.
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			e, err := fast.Next(wctx)
			cancel()
			if err != nil || e.Actor.ID != fmt.Sprint(i) {
				done <- fmt.Errorf("reading subscriber: event %d: %+v, %v", i, e, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	for i := range 3 {
		if e := next(t, slow); e.Actor.ID != fmt.Sprint(i) {
			t.Errorf("slow subscriber's event %d: %s", i, e.Actor.ID)
		}
	}
	if _, err := slow.Next(ctx); !errors.Is(err, ErrSlowSubscriber) {
		t.Errorf("slow subscriber: %v, want ErrSlowSubscriber", err)
	}
	x.mu.Lock()
	_, registered := x.subs[slow]
	x.mu.Unlock()
	if registered {
		t.Error("the dropped subscriber is still registered")
	}
}

// TestEndings: a subscription ends with its context, Close and the
// exchange's Close, and leaves nothing registered.
func TestEndings(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(x *Exchange, s *Subscription, cancel context.CancelFunc)
		want error
	}{
		{"context", func(_ *Exchange, _ *Subscription, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"Close", func(_ *Exchange, s *Subscription, _ context.CancelFunc) { s.Close() }, ErrSubscriptionClosed},
		{"exchange Close", func(x *Exchange, _ *Subscription, _ context.CancelFunc) { x.Close() }, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := New(Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := x.Subscribe(ctx, SubscribeOptions{Until: time.Now().Add(time.Hour).UnixNano()})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { _, err := s.Next(context.Background()); errc <- err }()
			tc.end(x, s, cancel)
			select {
			case err := <-errc:
				if !errors.Is(err, tc.want) {
					t.Errorf("Next: %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Next did not return")
			}
			x.mu.Lock()
			n := len(x.subs)
			x.mu.Unlock()
			s.mu.Lock()
			stops := len(s.stops)
			s.mu.Unlock()
			if n != 0 || stops != 0 {
				t.Errorf("left %d subscriptions registered, %d callbacks armed", n, stops)
			}
		})
	}
	x := New(Options{})
	x.Close()
	s, err := x.Subscribe(context.Background(), SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe to a closed exchange: %v, want ErrClosed", err)
	}
}

// TestConcurrent publishes from several goroutines to several subscribers
// (run with -race): each subscriber gets every event once, in the order of
// their times.
func TestConcurrent(t *testing.T) {
	const publishers, perPublisher, subscribers = 4, 200, 3
	x := New(Options{Buffer: publishers * perPublisher})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []*Subscription
	for range subscribers {
		s, err := x.Subscribe(ctx, SubscribeOptions{Namespace: "default"})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	counts := make([]int, subscribers)
	for i, s := range subs {
		wg.Go(func() {
			var last int64
			seen := map[string]bool{}
			for len(seen) < publishers*perPublisher {
				e, err := s.Next(ctx)
				if err != nil {
					t.Errorf("subscriber %d: %v", i, err)
					return
				}
				if e.Time <= last || seen[e.Actor.ID] {
					t.Errorf("subscriber %d: event %s out of order or twice", i, e.Actor.ID)
				}
				last, seen[e.Actor.ID] = e.Time, true
			}
			counts[i] = len(seen)
		})
	}
	var pub sync.WaitGroup
	for p := range publishers {
		pub.Go(func() {
			for i := range perPublisher {
				x.Publish(ctx, ctrEvent(ActionStart, fmt.Sprintf("%d-%d", p, i), "web", "busybox"))
			}
		})
	}
	// Subscribing and closing meanwhile must not disturb anyone.
	for range 50 {
		s, err := x.Subscribe(ctx, SubscribeOptions{Since: 1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	pub.Wait()
	wg.Wait()
	for i, n := range counts {
		if n != publishers*perPublisher {
			t.Errorf("subscriber %d got %d events, want %d", i, n, publishers*perPublisher)
		}
	}
}
