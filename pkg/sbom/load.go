package sbom

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/compression"
	"github.com/threefoldtech/zosbuilder/pkg/cpio"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/initramfs"
	"github.com/threefoldtech/zosbuilder/pkg/kernel"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
)

// Formats Load recognises.
const (
	FormatKernel    = "vmlinuz.efi"
	FormatInitramfs = "initramfs"
	FormatSBOM      = "SBOM"
)

// ErrNoSBOM is wrapped when an image carries no SBOM (built before this
// project wrote them).
var ErrNoSBOM = errors.New("image carries no SBOM")

// Image is an image, or its SBOM, as Load read it.
type Image struct {
	Path   string
	Format string // FormatKernel, FormatInitramfs or FormatSBOM
	// Inventory is what the image holds. For a kernel or an archive its
	// Files come from the archive's content itself (owners from the
	// embedded SBOM, else from the archive's apk database and the rules);
	// the rest from the embedded SBOM, or, when it has none, from what the
	// archive tells (build id, kernel version, apk packages, flist
	// manifests), with HasSBOM false.
	Inventory *Inventory
	HasSBOM   bool
	// SBOM is the SPDX JSON as stored (decompressed); nil without one.
	SBOM []byte
}

// Load reads a vmlinuz.efi (the initramfs embedded in it), an
// initramfs.cpio.xz (or a plain cpio), or an SPDX JSON file (optionally
// xz-compressed, such as the embedded copy).
func Load(ctx context.Context, file string) (*Image, error) {
	img, err := load(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	img.Path = file
	return img, nil
}

func load(ctx context.Context, file string) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(0x210)
	switch {
	case kernel.HasBootHeader(head):
		data, err := kernel.EmbeddedInitramfs(ctx, file)
		if err != nil {
			return nil, err
		}
		return fromArchive(ctx, FormatKernel, func(fn walkFunc) error {
			return initramfs.WalkStream(ctx, bytes.NewReader(data), fn)
		})
	case bytes.HasPrefix(head, []byte("0707")):
		return fromArchive(ctx, FormatInitramfs, func(fn walkFunc) error { return initramfs.Walk(ctx, file, fn) })
	case compression.Detect(head) == compression.XZ:
		if isXZJSON(file) {
			data, err := decompress(br)
			if err != nil {
				return nil, fmt.Errorf("decompress: %w", err)
			}
			return fromJSON(data)
		}
		return fromArchive(ctx, FormatInitramfs, func(fn walkFunc) error { return initramfs.Walk(ctx, file, fn) })
	case bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("{")):
		data, err := io.ReadAll(io.LimitReader(br, maxSBOM+1))
		if err != nil {
			return nil, err
		}
		if len(data) > maxSBOM {
			return nil, fmt.Errorf("larger than %d bytes: not an SBOM", maxSBOM)
		}
		return fromJSON(data)
	}
	return nil, errors.New("neither a vmlinuz.efi, an initramfs archive nor an SPDX JSON SBOM")
}

// isXZJSON reports whether the xz file decompresses to JSON rather than a
// cpio archive.
func isXZJSON(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	var first [1]byte
	d, err := decompressReader(f)
	if err != nil {
		return false
	}
	_, err = io.ReadFull(d, first[:])
	return err == nil && first[0] == '{'
}

func fromJSON(data []byte) (*Image, error) {
	inv, err := Unmarshal(data)
	if err != nil {
		return nil, err
	}
	return &Image{Format: FormatSBOM, Inventory: inv, HasSBOM: true, SBOM: data}, nil
}

type walkFunc = func(h *cpio.Header, body io.Reader) error

// fromArchive hashes every regular file of the archive and reads the files
// an inventory needs from it.
func fromArchive(ctx context.Context, format string, walk func(walkFunc) error) (*Image, error) {
	img := &Image{Format: format}
	var files []File
	small := map[string][]byte{} // the files read for their content
	wanted := func(name string) bool {
		switch {
		case name == EmbeddedPath, name == ApkInstalled, name == inRoot(rootfs.BuildIDFile),
			name == modules.KernelVersionPath, name == "etc/alpine-release":
			return true
		}
		return isManifest(name)
	}
	err := walk(func(h *cpio.Header, body io.Reader) error {
		if h.Type() != cpio.TypeReg {
			return nil
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		var keep bytes.Buffer
		var r io.Reader = body
		if wanted(name) {
			if h.Size > maxSBOM {
				return fmt.Errorf("%s: %d bytes is too large", name, h.Size)
			}
			r = io.TeeReader(body, &keep)
		}
		// The block keys identify the files of the embedded manifests.
		s, err := hashReader(r, true)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if wanted(name) {
			small[name] = keep.Bytes()
		}
		if name != EmbeddedPath {
			files = append(files, File{Path: name, Size: h.Size, SHA1: s.sha1, SHA256: s.sha256, blocks: blocksID(s.keys)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if data, ok := small[EmbeddedPath]; ok {
		js, err := decompress(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("embedded SBOM %s: %w", EmbeddedPath, err)
		}
		inv, err := Unmarshal(js)
		if err != nil {
			return nil, fmt.Errorf("embedded SBOM %s: %w", EmbeddedPath, err)
		}
		img.Inventory, img.HasSBOM, img.SBOM = inv, true, js
	} else {
		img.Inventory = &Inventory{
			BuildID: strings.TrimSpace(string(small[inRoot(rootfs.BuildIDFile)])),
			Alpine:  strings.TrimSpace(string(small["etc/alpine-release"])),
			Kernel:  Kernel{FullVersion: strings.TrimSpace(string(small[modules.KernelVersionPath]))},
		}
	}
	inv := img.Inventory
	if !img.HasSBOM {
		if db, ok := small[ApkInstalled]; ok {
			if inv.Packages, err = ParseApkInstalled(bytes.NewReader(db), ApkInstalled); err != nil {
				return nil, err
			}
		}
	} else if db, ok := small[ApkInstalled]; ok {
		// The SBOM keeps no file lists; the archive's database has them.
		pkgs, err := ParseApkInstalled(bytes.NewReader(db), ApkInstalled)
		if err != nil {
			return nil, err
		}
		inv.Packages = withFiles(inv.Packages, pkgs)
	}
	recorded := map[string]File{}
	for _, f := range inv.Files {
		recorded[f.Path] = f
	}
	own := newOwners(inv.Packages, inv.Components, inv.Firmware)
	for i := range files {
		f := &files[i]
		if r, ok := recorded[f.Path]; ok {
			f.Kind, f.Owner = r.Kind, r.Owner
		} else {
			f.Kind, f.Owner = own.explain(f.Path)
		}
	}
	inv.Files = files
	if err := embeddedFlists(ctx, inv, small, !img.HasSBOM); err != nil {
		return nil, err
	}
	inv.sort()
	return img, nil
}

// isManifest reports whether an image path is an embedded flist manifest.
func isManifest(name string) bool {
	return path.Dir(name) == "etc/rfs" && strings.HasSuffix(name, ".fl")
}

// embeddedFlists lists the files of the flist manifests the archive embeds
// (names, sizes and a hash of their block keys) and gives them to the
// inventory's flists of the same sha256; add makes an flist for each
// manifest (an image without an SBOM).
func embeddedFlists(ctx context.Context, inv *Inventory, small map[string][]byte, add bool) error {
	dir, err := os.MkdirTemp("", "sbom-flists-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	image := map[string]*File{}
	for i := range inv.Files {
		image[inv.Files[i].Path] = &inv.Files[i]
	}
	names := make([]string, 0, len(small))
	for name := range small {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !isManifest(name) {
			continue
		}
		sum := sha256.Sum256(small[name])
		hexsum := hex.EncodeToString(sum[:])
		fl := findFlist(inv, hexsum)
		if fl == nil && !add {
			continue
		}
		if fl == nil {
			inv.Flists = append(inv.Flists, guessFlist(path.Base(name), hexsum))
			fl = &inv.Flists[len(inv.Flists)-1]
		}
		tmp := filepath.Join(dir, path.Base(name))
		if err := os.WriteFile(tmp, small[name], 0o600); err != nil {
			return err
		}
		routes, files, err := readManifest(ctx, tmp)
		if err != nil {
			return fmt.Errorf("embedded %s: %w", name, err)
		}
		if len(fl.Routes) == 0 {
			fl.Routes = routes
		}
		fl.Files, fl.FilesListed = nil, true
		src := FlistSource{Kind: fl.Kind}
		for _, m := range files {
			f := m.File
			f.blocks = blocksID(m.keys)
			f.Kind, f.Owner = flistOwner(src, fl.MountPoint, &f, image)
			fl.Files = append(fl.Files, f)
		}
	}
	return nil
}

func findFlist(inv *Inventory, sha string) *Flist {
	for i := range inv.Flists {
		if inv.Flists[i].SHA256 == sha {
			return &inv.Flists[i]
		}
	}
	return nil
}

// guessFlist describes an embedded manifest of an image without an SBOM
// by the names rfs_flists gives them.
func guessFlist(name, sha string) Flist {
	fl := Flist{Name: name, SHA256: sha}
	switch {
	case strings.HasPrefix(name, "modules-"):
		fl.Kind = FlistModules
		if v := strings.TrimSuffix(strings.TrimPrefix(name, "modules-"), ".fl"); v != "" {
			fl.MountPoint = "lib/modules/" + v
		}
	case strings.HasPrefix(name, "firmware-"):
		fl.Kind, fl.MountPoint = FlistFirmware, "lib/firmware"
	}
	return fl
}

// withFiles gives the SBOM's packages the file lists of the database's.
func withFiles(pkgs, db []Package) []Package {
	files := map[string][]string{}
	for _, p := range db {
		files[p.Name] = p.Files
	}
	for i := range pkgs {
		pkgs[i].Files = files[pkgs[i].Name]
	}
	return pkgs
}

// blocksID identifies a file's content by its flist block keys: what an
// flist manifest alone tells about a file.
func blocksID(keys [][flist.HashSize]byte) string {
	h := sha256.New()
	for _, k := range keys {
		h.Write(k[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}
