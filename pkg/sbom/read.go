package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
)

// ErrNotZosSBOM is wrapped when a valid SPDX document was not written by
// this project (it has no Zero-OS image element).
var ErrNotZosSBOM = errors.New("not an SBOM written by zosbuilder")

// Unmarshal parses an SPDX JSON document with the SPDX library's own
// reader, validates it (Validate) and returns the inventory it describes.
func Unmarshal(data []byte) (*Inventory, error) {
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("sbom: read SPDX JSON: %w", err)
	}
	if err := Validate(doc); err != nil {
		return nil, err
	}
	return FromDocument(doc)
}

// FromDocument turns a document written by Document back into the
// inventory.
func FromDocument(doc *spdx.Document) (*Inventory, error) {
	inv := &Inventory{}
	if doc.CreationInfo != nil {
		t, err := time.Parse(time.RFC3339, doc.CreationInfo.Created)
		if err != nil {
			return nil, fmt.Errorf("sbom: created %q: %w", doc.CreationInfo.Created, err)
		}
		inv.Created = t.UTC()
	}
	flists := map[common.ElementID]int{}
	found := false
	for _, p := range doc.Packages {
		id := string(p.PackageSPDXIdentifier)
		c := parseKV(p.PackageComment)
		switch {
		case id == idImage:
			found = true
			inv.BuildID, inv.Alpine = c.get("build id"), c.get("alpine")
		case id == idKernel:
			inv.Kernel = Kernel{Version: c.get("version"), FullVersion: c.get("full version"), ConfigSHA256: c.get("config sha256")}
		case strings.HasPrefix(id, prefixApk):
			inv.Packages = append(inv.Packages, Package{
				Name: p.PackageName, Version: p.PackageVersion, Arch: c.get("arch"), Origin: c.get("origin"),
				License: c.get("apk license"), URL: p.PackageHomePage, Description: p.PackageSummary,
				Checksum: c.get("apk checksum"),
			})
		case strings.HasPrefix(id, prefixComp):
			inv.Components = append(inv.Components, Component{
				Name: p.PackageName, Type: c.get("type"), Source: c.get("source"), Version: c.get("version"),
				Revision: c.get("revision"), Checksum: c.get("checksum"), Recipe: c.get("recipe"),
				InstallPath: c.get("install path"), BinarySHA256: c.get("binary sha256"),
			})
		case strings.HasPrefix(id, prefixFwDir):
			inv.Firmware = append(inv.Firmware, FirmwareEntry{Name: strings.TrimPrefix(p.PackageName, FirmwarePackagePrefix)})
		case strings.HasPrefix(id, prefixFlist):
			fl := Flist{Name: p.PackageName, Kind: c.get("kind"), MountPoint: c.get("mount point"),
				Routes: c["route"], FilesListed: c.get("files listed") == "true"}
			for _, cs := range p.PackageChecksums {
				if cs.Algorithm == common.SHA256 {
					fl.SHA256 = cs.Value
				}
			}
			flists[p.PackageSPDXIdentifier] = len(inv.Flists)
			inv.Flists = append(inv.Flists, fl)
		}
	}
	if !found {
		return nil, fmt.Errorf("sbom: no %s package: %w", idImage, ErrNotZosSBOM)
	}
	container := map[common.ElementID]common.ElementID{}
	for _, r := range doc.Relationships {
		if r.Relationship == common.TypeRelationshipContains {
			container[r.RefB.ElementRefID] = r.RefA.ElementRefID
		}
	}
	for _, f := range doc.Files {
		if f.FileSPDXIdentifier == idKernelConf {
			for _, cs := range f.Checksums {
				if cs.Algorithm == common.SHA1 {
					inv.Kernel.ConfigSHA1 = cs.Value
				}
			}
			continue
		}
		file, err := fileFrom(f)
		if err != nil {
			return nil, err
		}
		if i, ok := flists[container[f.FileSPDXIdentifier]]; ok {
			inv.Flists[i].Files = append(inv.Flists[i].Files, file)
		} else {
			inv.Files = append(inv.Files, file)
		}
	}
	inv.sort()
	return inv, nil
}

func fileFrom(f *spdx.File) (File, error) {
	c := parseKV(f.FileComment)
	file := File{Path: strings.TrimPrefix(f.FileName, "./"), Owner: c.get("owner")}
	if k := c.get("kind"); k != "unexplained" {
		file.Kind = Kind(k)
	}
	if s := c.get("size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return file, fmt.Errorf("sbom: file %s: size %q: %w", f.FileName, s, err)
		}
		file.Size = n
	}
	for _, cs := range f.Checksums {
		switch cs.Algorithm {
		case common.SHA1:
			file.SHA1 = cs.Value
		case common.SHA256:
			file.SHA256 = cs.Value
		}
	}
	return file, nil
}

// kvs are the "key: value" lines of a comment; a key may repeat.
type kvs map[string][]string

func parseKV(s string) kvs {
	out := kvs{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func (k kvs) get(key string) string {
	if v := k[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
