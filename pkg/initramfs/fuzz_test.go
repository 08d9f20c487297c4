package initramfs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
)

// FuzzCheck feeds arbitrary files to Check, compressed or not: it never
// panics, every failure wraps ErrInvalid, and a report it passes lists an
// entry count and prints. Run longer with
//
//	go test -run '^$' -fuzz '^FuzzCheck$' -fuzztime 5m ./pkg/initramfs
func FuzzCheck(f *testing.F) {
	good := rawArchive(f, base(), xz.CRC32)
	gz, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gz)
	// The same archive uncompressed, and with a few traps.
	for _, entries := range [][]entry{
		base(),
		append(base(), entry{name: "../escape", mode: 0o100644, data: "x"}),
		append(base(), entry{name: "loop", mode: 0o120777, data: "loop"}, entry{name: "init", mode: 0o100755, data: "x"}),
	} {
		raw := rawArchive(f, entries, xz.None)
		zr, err := os.Open(raw)
		if err != nil {
			f.Fatal(err)
		}
		r, err := xz.NewReader(zr)
		if err != nil {
			f.Fatal(err)
		}
		plain, err := io.ReadAll(r)
		zr.Close()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(plain)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "fuzz.cpio.xz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := initramfs.Check(context.Background(), p, initramfs.CheckOptions{MaxSize: 1 << 20})
		if err != nil && !errors.Is(err, initramfs.ErrInvalid) {
			t.Fatalf("error does not wrap ErrInvalid: %v", err)
		}
		if rep == nil {
			t.Fatal("no report")
		}
		if err == nil && rep.Entries == 0 {
			t.Fatalf("an archive without entries passed: %+v", rep)
		}
		if perr := rep.Print(io.Discard); perr != nil {
			t.Fatal(perr)
		}
	})
}
