package modules

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
)

// ErrNoModinfo is wrapped when an ELF file has no .modinfo section.
var ErrNoModinfo = errors.New("no .modinfo section")

// Modinfo is the .modinfo section of a module: key=value pairs in file order.
type Modinfo struct {
	Fields []Field
}

// Field is one key=value pair of .modinfo.
type Field struct{ Key, Value string }

// Get returns every value of key, in file order (as `modinfo -F KEY`).
func (mi Modinfo) Get(key string) []string {
	var out []string
	for _, f := range mi.Fields {
		if f.Key == key {
			out = append(out, f.Value)
		}
	}
	return out
}

// Depends returns the module names of the depends= field.
func (mi Modinfo) Depends() []string {
	var out []string
	for _, v := range mi.Get("depends") {
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				out = append(out, Normalize(d))
			}
		}
	}
	return out
}

// Aliases returns the alias= values.
func (mi Modinfo) Aliases() []string { return mi.Get("alias") }

// Firmware returns the firmware= files, relative to /lib/firmware.
func (mi Modinfo) Firmware() []string { return mi.Get("firmware") }

// Softdeps returns the softdep= values ("pre: a b post: c").
func (mi Modinfo) Softdeps() []string { return mi.Get("softdep") }

// ReadModinfo parses the .modinfo section of a module file, which may be a
// plain ELF .ko or one compressed with xz, zstd or gzip.
func ReadModinfo(path string) (Modinfo, error) {
	file, err := os.Open(path)
	if err != nil {
		return Modinfo{}, fmt.Errorf("read module: %w", err)
	}
	defer file.Close()
	head := make([]byte, compression.MagicLen)
	n, err := io.ReadFull(file, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return Modinfo{}, fmt.Errorf("read module %s: %w", path, err)
	}
	var ra io.ReaderAt = file
	if compression.Detect(head[:n]) != compression.Plain {
		data, err := decompress(io.MultiReader(bytes.NewReader(head[:n]), file), path)
		if err != nil {
			return Modinfo{}, err
		}
		ra = bytes.NewReader(data)
	}
	f, err := elf.NewFile(ra)
	if err != nil {
		return Modinfo{}, fmt.Errorf("parse ELF %s: %w", path, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return Modinfo{}, fmt.Errorf("%s: %w", path, ErrNoModinfo)
	}
	raw, err := sec.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	return parseModinfo(raw), nil
}

func parseModinfo(raw []byte) Modinfo {
	var mi Modinfo
	for _, kv := range bytes.Split(raw, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if ok && k != "" {
			mi.Fields = append(mi.Fields, Field{k, v})
		}
	}
	return mi
}

// decompress returns the uncompressed bytes of a compressed module (the
// magic decides the format, not the file name).
func decompress(r io.Reader, path string) ([]byte, error) {
	dr, err := compression.NewReader(context.Background(), r, compression.Options{})
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	defer dr.Close()
	out, err := io.ReadAll(dr)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	return out, nil
}
