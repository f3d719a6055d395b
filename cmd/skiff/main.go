// Command skiff is the command line of the skiff container stack, with
// docker's verbs and flags. It talks to skiffd over its socket; see package
// github.com/skiff-containers/skiff/cli for the commands.
package main

import (
	"os"

	"github.com/skiff-containers/skiff/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
