// Package mdsection owns replacing a generated section of a markdown file
// (BENCHMARKS.md) between two marker lines, keeping the text around it. It
// must not know what the section says.
package mdsection

import (
	"bytes"
	"fmt"
	"os"
)

// Write puts body between begin and end in path: it replaces the old
// section if the file has both markers, appends one if it has neither, and
// creates the file (with a "# Benchmarks" title) if it does not exist.
func Write(path, begin, end, body string) error {
	section := begin + "\n" + body + end + "\n"
	old, err := os.ReadFile(path)
	var out []byte
	switch {
	case err == nil && bytes.Contains(old, []byte(begin)) && bytes.Contains(old, []byte(end)):
		i := bytes.Index(old, []byte(begin))
		j := bytes.Index(old, []byte(end)) + len(end)
		if j < i {
			return fmt.Errorf("%s: %q comes before %q; fix the markers by hand", path, end, begin)
		}
		rest := bytes.TrimPrefix(old[j:], []byte("\n"))
		out = append(append(append([]byte(nil), old[:i]...), section...), rest...)
	case err == nil:
		out = append(append(bytes.TrimRight(old, "\n"), "\n\n"...), section...)
	case os.IsNotExist(err):
		out = []byte("# Benchmarks\n\nNumbers from this machine; rerun with `make bench`.\n\n" + section)
	default:
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
