// Command curl is a TEST FIXTURE: a static Go HTTP client that accepts the
// one curl command line the unit scripts use (`curl -fsSL --max-time N -o
// FILE URL`), for chroot tests where Debian's static busybox wget cannot
// resolve addresses (glibc's NSS cannot load inside the chroot).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	var out, url string
	timeout := 60 * time.Second
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-fsSL":
		case "--max-time":
			i++
			n, _ := strconv.Atoi(args[i])
			timeout = time.Duration(n) * time.Second
		case "-o":
			i++
			out = args[i]
		default:
			url = args[i]
		}
	}
	if err := get(url, out, timeout); err != nil {
		fmt.Fprintln(os.Stderr, "curl:", err)
		os.Exit(22) // curl's exit code for an HTTP error with -f
	}
}

func get(url, out string, timeout time.Duration) error {
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
