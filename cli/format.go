package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/skiff-containers/skiff/errdefs"
)

// humanSize is docker's units.HumanSizeWithPrecision(size, 3): decimal
// units, three significant digits ("4.26MB", "1kB", "0B").
func humanSize(size float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}
	i := 0
	for size >= 1000 && i < len(units)-1 {
		size /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", size, units[i])
}

// bytesSize is docker's units.BytesSize: binary units, four significant
// digits ("1.937GiB"), used by `info`.
func bytesSize(size float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}
	i := 0
	for size >= 1024 && i < len(units)-1 {
		size /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", size, units[i])
}

// humanDuration is docker's units.HumanDuration.
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Round(time.Hour).Hours()); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// unixNano turns the API's times (Unix nanoseconds, 0 unset) into
// time.Time (zero when unset).
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// ago is "2 hours ago" for t, "N/A" when t is unset.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// ellipsis shortens s to max runes with a trailing "…", as docker's
// formatter does for COMMAND.
func ellipsis(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	if max <= 1 {
		return string(r[:max])
	}
	return string(r[:max-1]) + "…"
}

// newTable returns docker's table writer (minwidth 10, padding 3).
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
}

// templateFuncs are the functions docker's --format templates offer.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"join":  strings.Join,
		"split": strings.Split,
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
		"title": func(s string) string {
			if s == "" {
				return s
			}
			r, n := utf8.DecodeRuneInString(s)
			return strings.ToUpper(string(r)) + s[n:]
		},
		"truncate": func(s string, n int) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"pad": func(s string, l, r int) string {
			return strings.Repeat(" ", l) + s + strings.Repeat(" ", r)
		},
		"println": fmt.Sprintln,
	}
}

// formatter renders rows with a docker --format value: "table" (the
// default columns), "table TEMPLATE", "json", or a bare Go template.
type formatter struct {
	format  string
	headers map[string]string // field name → column header
	// defaultTable is the template of the default table.
	defaultTable string
}

// row is one object a formatter renders: a value for templates and its
// fields for "json".
type row interface {
	jsonFields() map[string]any
}

func (f formatter) render(w io.Writer, rows []row) error {
	format := strings.TrimSpace(f.format)
	if format == "" || format == "table" {
		format = "table " + f.defaultTable
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if err := enc.Encode(r.jsonFields()); err != nil {
				return err
			}
		}
		return nil
	}
	table := false
	if rest, ok := strings.CutPrefix(format, "table"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		table = true
		format = strings.TrimLeft(rest, " \t")
	}
	tmpl, err := newTemplate(format)
	if err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = newTable(w)
		out = tw
		var hdr bytes.Buffer
		if err := tmpl.Execute(&hdr, f.headers); err != nil {
			return &statusError{code: exitGeneral, msg: fmt.Sprintf("template: %v", err)}
		}
		fmt.Fprintln(out, strings.TrimRight(hdr.String(), "\n"))
	}
	for _, r := range rows {
		var b bytes.Buffer
		if err := tmpl.Execute(&b, r); err != nil {
			return &statusError{code: exitGeneral, msg: fmt.Sprintf("template: %v", err)}
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), "\n"))
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// printJSON prints v as docker's inspect does (four-space indent).
func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// rfc3339 formats a time the way docker's inspect does, "0001-01-01T00:00:00Z"
// when unset.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// newTemplate parses a --format template; docker lets users write \t and
// \n for a tab and a newline.
func newTemplate(format string) (*template.Template, error) {
	format = strings.ReplaceAll(format, `\t`, "\t")
	format = strings.ReplaceAll(format, `\n`, "\n")
	tmpl, err := template.New("format").Funcs(templateFuncs()).Parse(format)
	if err != nil {
		return nil, &statusError{code: exitGeneral, msg: fmt.Sprintf("template parsing error: %v", err)}
	}
	return tmpl, nil
}

// isNotFound reports whether err is of the not-found class.
func isNotFound(err error) bool { return errdefs.IsNotFound(err) }
