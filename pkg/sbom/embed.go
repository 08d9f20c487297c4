package sbom

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"

	"github.com/ulikunitz/xz"

	"github.com/threefoldtech/zosbuilder/internal/fsutil"
)

// EmbeddedPath is where the image carries its own SBOM (xz-compressed
// compact JSON), relative to the root: `xzcat /etc/zero-os/sbom.spdx.json.xz`
// on a node.
const EmbeddedPath = "etc/zero-os/sbom.spdx.json.xz"

// maxSBOM bounds what reading an SBOM decompresses or reads (hostile
// archives may hold anything under that name).
const maxSBOM = 256 << 20

// Embedded returns the copy of inv the image carries: the flists keep
// their name, sha256, mount point and routes but not their file lists
// (those are in the manifests in /etc/rfs, which the sha256 pins), so the
// copy stays small. It is xz-compressed compact JSON with a CRC32 check,
// which busybox's xzcat reads.
func Embedded(inv *Inventory) ([]byte, error) {
	c := *inv
	c.Flists = make([]Flist, len(inv.Flists))
	for i, fl := range inv.Flists {
		fl.Files, fl.FilesListed = nil, false
		c.Flists[i] = fl
	}
	js, err := MarshalCompact(&c)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&out)
	if err != nil {
		return nil, fmt.Errorf("sbom: compress: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return nil, fmt.Errorf("sbom: compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("sbom: compress: %w", err)
	}
	return out.Bytes(), nil
}

func decompressReader(r io.Reader) (io.Reader, error) { return xz.NewReader(r) }

// decompress reads an xz stream, at most maxSBOM bytes of it.
func decompress(r io.Reader) ([]byte, error) {
	xr, err := decompressReader(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(xr, maxSBOM+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSBOM {
		return nil, fmt.Errorf("larger than %d bytes", maxSBOM)
	}
	return data, nil
}

// Written says what WriteFiles wrote.
type Written struct {
	Full     int // bytes of the full SPDX JSON (dist/sbom.spdx.json)
	Embedded int // bytes of the compressed compact copy in the image
	Files    int // files described, flists included
}

// WriteFiles writes the full SBOM to dist (indented JSON) and the compact
// copy into the image at root/EmbeddedPath, both atomically. Each is first
// parsed back with the SPDX library's reader and validated, so a document
// that would not read back is never written.
func WriteFiles(inv *Inventory, dist, root string) (Written, error) {
	full, err := Marshal(inv)
	if err != nil {
		return Written{}, err
	}
	if _, err := Unmarshal(full); err != nil {
		return Written{}, fmt.Errorf("sbom: the document does not read back: %w", err)
	}
	embedded, err := Embedded(inv)
	if err != nil {
		return Written{}, err
	}
	js, err := decompress(bytes.NewReader(embedded))
	if err == nil {
		_, err = Unmarshal(js)
	}
	if err != nil {
		return Written{}, fmt.Errorf("sbom: the embedded copy does not read back: %w", err)
	}
	if err := fsutil.WriteFile(dist, full, 0o644); err != nil {
		return Written{}, fmt.Errorf("sbom: %w", err)
	}
	if err := fsutil.WriteFile(filepath.Join(root, filepath.FromSlash(EmbeddedPath)), embedded, 0o644); err != nil {
		return Written{}, fmt.Errorf("sbom: %w", err)
	}
	w := Written{Full: len(full), Embedded: len(embedded), Files: len(inv.Files)}
	for _, fl := range inv.Flists {
		w.Files += len(fl.Files)
	}
	return w, nil
}
