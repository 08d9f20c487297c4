package flist

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/golang/snappy"

	"github.com/threefoldtech/zosbuilder/internal/testutil"
	"github.com/threefoldtech/zosbuilder/pkg/store"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBlockVector is the vector of testdata/README (from the rfs-made
// alpine-latest.fl), including the intermediate values.
func TestBlockVector(t *testing.T) {
	plain := []byte("3.20.2\n")
	if got, want := snappy.Encode(nil, plain), unhex(t, "0718332e32302e320a"); !bytes.Equal(got, want) {
		t.Errorf("snappy = %x, want %x", got, want)
	}
	b, blob, err := EncodeBlock(plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Key[:], unhex(t, "e0b0979bf3ab0e1967db75aa7257bfc5e45fb81251613a8e6375bb293830318b"); !bytes.Equal(got, want) {
		t.Errorf("key = %x, want %x", got, want)
	}
	if got, want := blob, unhex(t, "5d6258fab05cd011d2e5f3fd84c4371923e5d8c14d4ca1443c"); !bytes.Equal(got, want) {
		t.Errorf("blob = %x, want %x", got, want)
	}
	if got, want := b.ID[:], unhex(t, "3c95451e4c2aff6e1ca04e4f9aa7b337952641ab64b854187481685d3073c829"); !bytes.Equal(got, want) {
		t.Errorf("id = %x, want %x", got, want)
	}
	back, err := DecodeBlock(b.Key, blob)
	if err != nil || !bytes.Equal(back, plain) {
		t.Errorf("DecodeBlock = %q, %v", back, err)
	}
	if err := CheckBlock(b, blob); err != nil {
		t.Errorf("CheckBlock: %v", err)
	}
}

// TestBlockVectorsFromRfs encodes the known plaintexts of /etc files of
// alpine-latest.fl (spec §2.1) and compares with the block rows rfs wrote
// for them; fstab and os-release make snappy emit copy tags.
func TestBlockVectorsFromRfs(t *testing.T) {
	files := map[string]string{
		"alpine-release": "3.20.2\n",
		"modules":        "af_packet\nipv6\n",
		"shells":         "# valid login shells\n/bin/sh\n/bin/ash\n",
		"fstab":          "/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n/dev/usbdisk\t/media/usb\tvfat\tnoauto,ro 0 0\n",
		"os-release": "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.2\nPRETTY_NAME=\"Alpine Linux v3.20\"\n" +
			"HOME_URL=\"https://alpinelinux.org/\"\nBUG_REPORT_URL=\"https://gitlab.alpinelinux.org/alpine/aports/-/issues\"\n",
		"issue": "Welcome to Alpine Linux 3.20\nKernel \\r on an \\m (\\l)\n\n",
	}
	r := openTestdata(t, "alpine-latest.fl")
	for name, plain := range files {
		t.Run(name, func(t *testing.T) {
			in, err := r.LookupPath(ctx, "/etc/"+name)
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := r.Blocks(ctx, in.Ino)
			if err != nil || len(blocks) != 1 {
				t.Fatalf("blocks = %v, %v", blocks, err)
			}
			got, _, err := EncodeBlock([]byte(plain))
			if err != nil {
				t.Fatal(err)
			}
			if got != blocks[0] {
				t.Errorf("encoded %x/%x, rfs wrote %x/%x", got.ID, got.Key, blocks[0].ID, blocks[0].Key)
			}
		})
	}
	fstab := snappy.Encode(nil, []byte(files["fstab"]))
	want := unhex(t, "59402f6465762f6364726f6d092f6d656469610d0d5469736f39363630096e6f6175746f2c726f203020300a052e187573626469736b1130587573620976666174096e6f6175746f2c726f203020300a")
	if !bytes.Equal(fstab, want) {
		t.Errorf("snappy(fstab) = %x, want %x", fstab, want)
	}
}

// TestSnappyMatchesRustSnap compares golang/snappy with the Rust snap crate
// (the encoder rfs uses) on full 512 KiB chunks of several kinds, where the
// encoders' 64 KiB fragmenting and match heuristics all come into play.
func TestSnappyMatchesRustSnap(t *testing.T) {
	testutil.Slow(t)
	cargo := testutil.RequireTool(t, "cargo")
	if m, _ := filepath.Glob("/usr/share/cargo/registry/snap-1.*"); len(m) == 0 {
		testutil.Missing(t, "the Rust snap crate (apt-get install librust-snap-dev)")
	}
	// Build a copy: cargo writes Cargo.lock next to Cargo.toml.
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", "testdata/snapref/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy testdata/snapref: %v: %s", err, out)
	}
	build := exec.Command(cargo, "build", "--release", "--quiet", "--offline")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the Rust reference encoder: %v\n%s", err, out)
	}
	ref := filepath.Join(dir, "target", "release", "snapref")

	random := make([]byte, BlockSize)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("Welcome to Alpine Linux 3.20\nKernel \\r on an \\m (\\l)\n\n"), BlockSize/54+1)[:BlockSize]
	mixed := append(append([]byte{}, random[:BlockSize/2]...), text[:BlockSize/2]...)
	inputs := map[string][]byte{
		"zeros":  make([]byte, BlockSize),
		"random": random,
		"text":   text,
		"mixed":  mixed,
		"short":  text[:70000],
	}
	if ko := firstModule(t); ko != nil {
		inputs["kernel module"] = ko
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(ref)
			cmd.Stdin = bytes.NewReader(in)
			want, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := snappy.Encode(nil, in); !bytes.Equal(got, want) {
				t.Errorf("golang/snappy output (%d bytes) differs from Rust snap (%d bytes)", len(got), len(want))
			}
		})
	}
}

// firstModule returns the first 512 KiB of a large kernel module of the
// host, a realistic compressible binary, or nil.
func firstModule(t *testing.T) []byte {
	matches, _ := filepath.Glob("/lib/modules/*/kernel/fs/btrfs/btrfs.ko")
	if len(matches) == 0 {
		return nil
	}
	b, err := os.ReadFile(matches[0])
	if err != nil || len(b) < BlockSize {
		return nil
	}
	return b[:BlockSize]
}

func TestDecodeCorrupt(t *testing.T) {
	b, blob, err := EncodeBlock([]byte("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  [HashSize]byte
		blob []byte
	}{
		{"flipped byte", b.Key, append([]byte{blob[0] ^ 1}, blob[1:]...)},
		{"truncated", b.Key, blob[:len(blob)-1]},
		{"empty", b.Key, nil},
		{"wrong key", [HashSize]byte{1}, blob},
	}
	for _, tt := range tests {
		if _, err := DecodeBlock(tt.key, tt.blob); !errors.Is(err, ErrCorruptBlock) {
			t.Errorf("%s: DecodeBlock = %v, want ErrCorruptBlock", tt.name, err)
		}
	}
	other := b
	other.ID[0] ^= 1
	if err := CheckBlock(other, blob); !errors.Is(err, ErrCorruptBlock) {
		t.Errorf("CheckBlock with a wrong id = %v", err)
	}
}

func TestChunker(t *testing.T) {
	tests := []struct {
		size int
		want []int
	}{
		{0, nil},
		{1, []int{1}},
		{BlockSize, []int{BlockSize}},
		{BlockSize + 1, []int{BlockSize, 1}},
		{3*BlockSize - 5, []int{BlockSize, BlockSize, BlockSize - 5}},
	}
	for _, tt := range tests {
		data := bytes.Repeat([]byte{7}, tt.size)
		// A reader that returns little per call must still give full
		// chunks: rfs's FUSE reader relies on fixed 512 KiB blocks.
		for _, r := range []io.Reader{bytes.NewReader(data), iotest.HalfReader(bytes.NewReader(data)), iotest.OneByteReader(bytes.NewReader(data))} {
			c := NewChunker(r)
			var got []int
			for {
				chunk, err := c.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, len(chunk))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("size %d: chunks %v, want %v", tt.size, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("size %d: chunks %v, want %v", tt.size, got, tt.want)
				}
			}
		}
	}
	if _, err := NewChunker(iotest.ErrReader(io.ErrClosedPipe)).Next(); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read error = %v", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	inputs := map[string][]byte{"random": make([]byte, BlockSize), "text": bytes.Repeat([]byte("kernel module text "), BlockSize/19)}
	_, _ = rand.Read(inputs["random"])
	for name, in := range inputs {
		b.Run(name, func(b *testing.B) {
			var e Encoder
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, _, err := e.Encode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	in := make([]byte, BlockSize)
	_, _ = rand.Read(in[:BlockSize/2])
	blk, blob, err := EncodeBlock(in)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(BlockSize)
	for b.Loop() {
		if _, err := DecodeBlock(blk.Key, blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPack packs a 64 MiB tree of random and text files to a dir store
// (throughput per byte of the tree; the store is emptied between rounds).
func BenchmarkPack(b *testing.B) {
	src := b.TempDir()
	text := bytes.Repeat([]byte("kernel module text "), 1<<20/19)
	random := make([]byte, 8<<20)
	_, _ = rand.Read(random)
	var size int64
	for i := range 8 {
		data := random
		if i%2 == 1 {
			data = append(append([]byte{}, text...), random[:7<<20]...)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(len(data))
	}
	b.SetBytes(size)
	for b.Loop() {
		storeDir := b.TempDir()
		if _, err := Pack(ctx, src, filepath.Join(storeDir, "b.fl"), PackOptions{Store: store.NewDir(storeDir), NoReuse: true}); err != nil {
			b.Fatal(err)
		}
	}
}
