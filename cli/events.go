package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// eventTimeLayout is docker's RFC3339NanoFixed: nanoseconds always shown.
const eventTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// eventMessage is docker's events.Message: what --format templates and
// JSON see, with docker's field names (Status, ID and From are docker's
// deprecated fields, still filled for containers and images).
type eventMessage struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string
	Action   string
	Actor    eventActor
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

type eventActor struct {
	ID         string
	Attributes map[string]string
}

func toEventMessage(e *skiffv1.Event) eventMessage {
	m := eventMessage{
		Type: e.GetType(), Action: e.GetAction(), Scope: "local",
		Actor:    eventActor{ID: e.GetActor().GetId(), Attributes: e.GetActor().GetAttributes()},
		Time:     e.GetTime() / int64(time.Second),
		TimeNano: e.GetTime(),
	}
	if m.Actor.Attributes == nil {
		m.Actor.Attributes = map[string]string{}
	}
	switch m.Type {
	case "container":
		m.ID, m.Status, m.From = m.Actor.ID, m.Action, m.Actor.Attributes["image"]
	case "image":
		m.ID, m.Status = m.Actor.ID, m.Action
	}
	return m
}

// writeEvent prints one event as docker does by default:
// "<time> <type> <action> <id> (k=v, …)", attributes sorted by key.
func writeEvent(w io.Writer, m eventMessage) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s", time.Unix(0, m.TimeNano).Format(eventTimeLayout), m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, len(keys))
		for i, k := range keys {
			attrs[i] = k + "=" + m.Actor.Attributes[k]
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(attrs, ", "))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// eventsTimestamp parses --since or --until: docker's forms (see
// parseTimestamp), where "0" is the epoch, not a duration. The epoch is
// sent as 1 ns, since 0 means unset in the API.
func eventsTimestamp(flag, value string, now time.Time) (int64, error) {
	if value == "" {
		return 0, nil
	}
	if value == "0" {
		return 1, nil
	}
	ns, err := parseTimestamp(value, now)
	if err != nil {
		return 0, invalid("invalid value %q for --%s: give an RFC 3339 time (2006-01-02T15:04:05Z), Unix seconds[.nanoseconds] or a duration before now (10m)", value, flag)
	}
	return max(ns, 1), nil
}

func (a *app) eventsCommand() *cobra.Command {
	var filters []string
	var format, since, until string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			req := &skiffv1.SubscribeEventsRequest{Filters: filters}
			var err error
			if req.Since, err = eventsTimestamp("since", since, now); err != nil {
				return err
			}
			if req.Until, err = eventsTimestamp("until", until, now); err != nil {
				return err
			}
			var tmpl *template.Template
			switch f := strings.TrimSpace(format); f {
			case "":
			case "json":
				tmpl, err = newTemplate("{{json .}}")
			default:
				tmpl, err = newTemplate(f)
			}
			if err != nil {
				return err
			}
			ctx, _, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.streamEvents(ctx, req, tmpl)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided (container, event, image, label, network, type, volume)")
	f.StringVar(&format, "format", "", "Format output using a custom template: 'json' prints in JSON format, else a Go template")
	f.StringVar(&since, "since", "", "Show all events created since timestamp (RFC 3339, Unix seconds, or relative: 10m)")
	f.StringVar(&until, "until", "", "Stream events until this timestamp (RFC 3339, Unix seconds, or relative: 10m)")
	return cmd
}

// streamEvents prints the events of req until the stream ends: at until,
// or when the daemon ends it (an error).
func (a *app) streamEvents(ctx context.Context, req *skiffv1.SubscribeEventsRequest, tmpl *template.Template) error {
	stream, err := skiffv1.NewEventsClient(a.conn).Subscribe(ctx, req)
	if err != nil {
		return a.fromDaemon(err)
	}
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return a.fromDaemon(err)
		}
		m := toEventMessage(e)
		if tmpl == nil {
			if err := writeEvent(a.env.Stdout, m); err != nil {
				return err
			}
			continue
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, m); err != nil {
			return &statusError{code: exitGeneral, msg: fmt.Sprintf("template: %v", err)}
		}
		b.WriteByte('\n')
		if _, err := a.env.Stdout.Write(b.Bytes()); err != nil {
			return err
		}
	}
}
