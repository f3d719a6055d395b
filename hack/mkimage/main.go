// Command mkimage writes skiff's built-in default image, a busybox image
// made from the host's static busybox (Debian busybox-static), as an OCI
// archive that `skiff load` (and `podman load`, `ctr image import`) reads:
//
//	go run ./hack/mkimage -o busybox.tar [-name localhost/skiff/busybox:latest]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/skiff-containers/skiff/internal/imagebuild"
)

func main() {
	out := flag.String("o", "busybox.tar", "archive to write")
	name := flag.String("name", imagebuild.DefaultName, "image reference")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mkimage: unexpected argument %q: name the archive with -o FILE\n", flag.Arg(0))
		os.Exit(2)
	}
	img, err := imagebuild.Build(imagebuild.Options{Name: *name})
	if err == nil {
		err = img.WriteArchiveFile(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(img.Name)
}
