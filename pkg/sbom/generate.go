package sbom

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/threefoldtech/zosbuilder/internal/redact"
	"github.com/threefoldtech/zosbuilder/pkg/components"
	"github.com/threefoldtech/zosbuilder/pkg/firmware"
	"github.com/threefoldtech/zosbuilder/pkg/flist"
	"github.com/threefoldtech/zosbuilder/pkg/modules"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
)

// Options are the inputs of Generate: the image tree and what the build
// knows about it.
type Options struct {
	// Root is the image tree (INSTALL_DIR), ready to be packed.
	Root string
	// BuildID is the image's build id; "" reads Root/etc/zero-os-build-id.
	BuildID string
	// Created is the build time (SOURCE_DATE_EPOCH when set).
	Created time.Time
	// KernelVersion and KernelFullVersion describe the kernel; KernelConfig
	// is the path of the kernel config the build used (hashed).
	KernelVersion     string
	KernelFullVersion string
	KernelConfig      string
	// Components are the sources.conf components; Generate fills in
	// BinarySHA256 from the image.
	Components []Component
	// FirmwareDir and FirmwareEntries are FIRMWARE_DIR and firmware.conf:
	// an entry with files in FirmwareDir/<entry>/ was copied from there.
	FirmwareDir     string
	FirmwareEntries []string
	// Flists are the flists the image mounts.
	Flists []FlistSource
	// Jobs is how many files are hashed at once; 0 means the CPU count.
	Jobs int
}

// FlistSource is an flist of the build and the tree it was packed from.
type FlistSource struct {
	Path       string // the .fl manifest
	Kind       string // FlistModules or FlistFirmware
	MountPoint string // where nodes mount it, relative to the root
	// Source is the tree the flist was packed from. Its files are hashed
	// and checked block by block against the manifest, so the SBOM
	// describes exactly what the flist serves.
	Source string
	// Packages maps a path inside the flist to the package it came from
	// (the linux-firmware-* package of a firmware file), when known.
	Packages map[string]string
}

// ErrStaleFlist is wrapped when an flist does not hold what its source tree
// holds now: the SBOM would describe something nodes do not get.
var ErrStaleFlist = errors.New("flist differs from the tree it was packed from")

// Generate takes stock of the image at opt.Root and of its flists. Files no
// rule explains are kept with KindUnknown (see Inventory.Unexplained).
func Generate(ctx context.Context, opt Options) (*Inventory, error) {
	inv := &Inventory{
		BuildID: opt.BuildID,
		Created: opt.Created.UTC(),
		Kernel:  Kernel{Version: opt.KernelVersion, FullVersion: opt.KernelFullVersion},
	}
	if inv.BuildID == "" {
		id, err := os.ReadFile(filepath.Join(opt.Root, rootfs.BuildIDFile))
		if err != nil {
			return nil, fmt.Errorf("sbom: read the build id: %w", err)
		}
		inv.BuildID = strings.TrimSpace(string(id))
	}
	if rel, err := os.ReadFile(filepath.Join(opt.Root, "etc/alpine-release")); err == nil {
		inv.Alpine = strings.TrimSpace(string(rel))
	}
	if opt.KernelConfig != "" {
		s, err := hashFile(opt.KernelConfig)
		if err != nil {
			return nil, fmt.Errorf("sbom: kernel config %s: %w", opt.KernelConfig, err)
		}
		inv.Kernel.ConfigSHA1, inv.Kernel.ConfigSHA256 = s.sha1, s.sha256
	}
	pkgs, err := readApkDB(opt.Root)
	if err != nil {
		return nil, err
	}
	inv.Packages = pkgs
	if inv.Firmware, err = firmwareEntries(opt); err != nil {
		return nil, err
	}
	inv.Components = make([]Component, len(opt.Components))
	for i, c := range opt.Components {
		c.Source = redact.StripURL(c.Source)
		inv.Components[i] = c
	}
	if inv.Files, err = imageFiles(ctx, opt.Root, jobs(opt.Jobs)); err != nil {
		return nil, err
	}
	own := newOwners(inv.Packages, inv.Components, inv.Firmware)
	byPath := map[string]*File{}
	for i := range inv.Files {
		f := &inv.Files[i]
		f.Kind, f.Owner = own.explain(f.Path)
		byPath[f.Path] = f
	}
	for i, c := range inv.Components {
		f, ok := byPath[inRoot(path.Clean(c.InstallPath))]
		if !ok {
			return nil, fmt.Errorf("sbom: component %s: %s is not in %s", c.Name, c.InstallPath, opt.Root)
		}
		inv.Components[i].BinarySHA256 = f.SHA256
	}
	for _, src := range opt.Flists {
		fl, err := readFlist(ctx, src, byPath, jobs(opt.Jobs))
		if err != nil {
			return nil, err
		}
		inv.Flists = append(inv.Flists, fl)
	}
	inv.sort()
	return inv, nil
}

func jobs(n int) int {
	if n <= 0 {
		return runtime.NumCPU()
	}
	return n
}

// Unexplained lists the image files no rule explains.
func (inv *Inventory) Unexplained() []string {
	var out []string
	for _, f := range inv.Files {
		if f.Kind == KindUnknown {
			out = append(out, f.Path)
		}
	}
	return out
}

func (inv *Inventory) sort() {
	sort.Slice(inv.Packages, func(i, j int) bool { return inv.Packages[i].Name < inv.Packages[j].Name })
	sort.Slice(inv.Components, func(i, j int) bool { return inv.Components[i].Name < inv.Components[j].Name })
	sort.Slice(inv.Firmware, func(i, j int) bool { return inv.Firmware[i].Name < inv.Firmware[j].Name })
	sort.Slice(inv.Flists, func(i, j int) bool { return inv.Flists[i].Name < inv.Flists[j].Name })
	sortFiles(inv.Files)
	for i := range inv.Flists {
		sortFiles(inv.Flists[i].Files)
	}
}

func sortFiles(fs []File) { sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path }) }

func readApkDB(root string) ([]Package, error) {
	p := filepath.Join(root, ApkInstalled)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer f.Close()
	return ParseApkInstalled(f, p)
}

// firmwareEntries are the firmware.conf entries firmware.Select took from
// FIRMWARE_DIR (by the same rule) and that the image holds.
func firmwareEntries(opt Options) ([]FirmwareEntry, error) {
	var out []FirmwareEntry
	if opt.FirmwareDir == "" {
		return nil, nil
	}
	for _, e := range opt.FirmwareEntries {
		has, err := firmware.HasFiles(filepath.Join(opt.FirmwareDir, e))
		if err != nil {
			return nil, err
		}
		if st, err := os.Stat(filepath.Join(opt.Root, "lib", "firmware", e)); has && err == nil && st.IsDir() {
			out = append(out, FirmwareEntry{Name: e})
		}
	}
	return out, nil
}

// imageFiles lists and hashes every regular file under root except the
// SBOM itself.
func imageFiles(ctx context.Context, root string, n int) ([]File, error) {
	var files []File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); rel != EmbeddedPath {
			files = append(files, File{Path: rel})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sbom: list %s: %w", root, err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer r.Close()
	err = parallel(ctx, n, len(files), func(i int) error {
		s, err := hashIn(r, files[i].Path, false)
		if err != nil {
			return fmt.Errorf("sbom: hash %s: %w", filepath.Join(root, files[i].Path), err)
		}
		files[i].Size, files[i].SHA1, files[i].SHA256 = s.size, s.sha1, s.sha256
		return nil
	})
	return files, err
}

// sums are a file's size and digests; keys are the BLAKE2b-256 of each
// flist block (when asked).
type sums struct {
	size         int64
	sha1, sha256 string
	keys         [][flist.HashSize]byte
}

func hashIn(r *os.Root, rel string, blocks bool) (sums, error) {
	f, err := r.Open(filepath.FromSlash(rel))
	if err != nil {
		return sums{}, err
	}
	defer f.Close()
	return hashReader(f, blocks)
}

func hashFile(p string) (sums, error) {
	f, err := os.Open(p)
	if err != nil {
		return sums{}, err
	}
	defer f.Close()
	s, err := hashReader(f, false)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", p, err)
	}
	return s, nil
}

// hashReader reads r in flist-sized blocks, so the block keys come out of
// the same pass as the digests.
func hashReader(r io.Reader, blocks bool) (sums, error) {
	h1, h256 := sha1.New(), sha256.New()
	w := io.MultiWriter(h1, h256)
	var s sums
	buf := make([]byte, flist.BlockSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			w.Write(buf[:n])
			s.size += int64(n)
			if blocks {
				s.keys = append(s.keys, blake2b.Sum256(buf[:n]))
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return sums{}, err
		}
	}
	s.sha1, s.sha256 = hex.EncodeToString(h1.Sum(nil)), hex.EncodeToString(h256.Sum(nil))
	return s, nil
}

// parallel runs fn(0..count-1) on n goroutines and returns the first error.
func parallel(ctx context.Context, n, count int, fn func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range count {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

// readFlist describes an flist: its manifest's sha256, routes without
// credentials, and every regular file, hashed from the source tree and
// checked against the manifest's block keys.
func readFlist(ctx context.Context, src FlistSource, image map[string]*File, n int) (Flist, error) {
	fl := Flist{Name: filepath.Base(src.Path), Kind: src.Kind, MountPoint: src.MountPoint, FilesListed: true}
	s, err := hashFile(src.Path)
	if err != nil {
		return fl, fmt.Errorf("sbom: flist: %w", err)
	}
	fl.SHA256 = s.sha256
	var entries []manifestFile
	if fl.Routes, entries, err = readManifest(ctx, src.Path); err != nil {
		return fl, err
	}
	root, err := os.OpenRoot(src.Source)
	if err != nil {
		return fl, fmt.Errorf("sbom: source of %s: %w", fl.Name, err)
	}
	defer root.Close()
	fl.Files = make([]File, len(entries))
	err = parallel(ctx, n, len(entries), func(i int) error {
		e := entries[i]
		s, err := hashIn(root, e.Path, true)
		if err != nil {
			return fmt.Errorf("sbom: %s: %w: %w", fl.Name, ErrStaleFlist, err)
		}
		if s.size != e.Size || len(e.keys) != len(s.keys) || !sameKeys(e.keys, s.keys) {
			return fmt.Errorf("sbom: %s: %s: %w %s; pack it again (mage reset rfs_flists)",
				fl.Name, e.Path, ErrStaleFlist, src.Source)
		}
		f := File{Path: e.Path, Size: s.size, SHA1: s.sha1, SHA256: s.sha256}
		f.Kind, f.Owner = flistOwner(src, fl.MountPoint, &f, image)
		fl.Files[i] = f
		return nil
	})
	return fl, err
}

// manifestFile is a regular file of an flist manifest with its block keys.
type manifestFile struct {
	File
	keys [][flist.HashSize]byte
}

// readManifest reads an flist's routes (without credentials) and regular
// files (path relative to its root, size, block keys).
func readManifest(ctx context.Context, fl string) ([]string, []manifestFile, error) {
	r, err := flist.Open(fl)
	if err != nil {
		return nil, nil, fmt.Errorf("sbom: %w", err)
	}
	defer r.Close()
	rts, err := r.Routes(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("sbom: %w", err)
	}
	var routes []string
	for _, rt := range rts {
		routes = append(routes, redact.StripURL(rt.URL))
	}
	var files []manifestFile
	index := map[int64]int{}
	err = r.Walk(ctx, func(p string, in *flist.Inode) error {
		if in.Type() == flist.TypeRegular {
			index[in.Ino] = len(files)
			files = append(files, manifestFile{File: File{Path: strings.TrimPrefix(p, "/"), Size: int64(in.Size)}})
		}
		return nil
	})
	if err == nil {
		err = r.EachBlock(ctx, func(ino int64, b flist.Block) error {
			if i, ok := index[ino]; ok {
				files[i].keys = append(files[i].keys, b.Key)
			}
			return nil
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sbom: %w", err)
	}
	return routes, files, nil
}

func sameKeys(a, b [][flist.HashSize]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i][:], b[i][:]) {
			return false
		}
	}
	return true
}

// flistOwner explains a file of an flist: modules belong to the kernel,
// depmod's indexes to kernel_modules; firmware to the package the caller
// names, else to the owner of the same file in the image.
func flistOwner(src FlistSource, mount string, f *File, image map[string]*File) (Kind, string) {
	if src.Kind == FlistModules {
		if modules.IsModuleFile(f.Path) {
			return KindModule, OwnerModules
		}
		return KindGenerated, "kernel_modules"
	}
	if pkg := src.Packages[f.Path]; pkg != "" {
		return KindFirmware, pkg
	}
	if in, ok := image[path.Join(mount, f.Path)]; ok && in.Size == f.Size && sameContent(*in, *f) {
		return KindFirmware, in.Owner
	}
	return KindFirmware, ""
}

// ComponentsOf describes sources.conf components as built by
// components.Build with opt: the revision of each git checkout, the
// release's pinned sha256, the recipe and the install path. Generate adds
// the binary's sha256 from the image.
func ComponentsOf(ctx context.Context, comps []components.Component, opt components.Options) ([]Component, error) {
	out := make([]Component, 0, len(comps))
	for _, c := range comps {
		rev, err := opt.Revision(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("sbom: %w", err)
		}
		out = append(out, Component{
			Name: c.Name, Type: string(c.Type), Source: redact.StripURL(c.Source), Version: c.Version,
			Revision: rev, Checksum: c.Checksum, Recipe: c.Build.String(), InstallPath: c.InstallPath,
		})
	}
	return out, nil
}
