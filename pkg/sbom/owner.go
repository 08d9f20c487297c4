package sbom

import (
	"path"
	"strings"

	"github.com/threefoldtech/zosbuilder/pkg/modules"
	"github.com/threefoldtech/zosbuilder/pkg/rootfs"
	"github.com/threefoldtech/zosbuilder/pkg/zinit"
)

// rule explains the files matching pattern: a path.Match pattern, or a
// folder prefix when it ends in "/".
type rule struct {
	pattern string
	kind    Kind
	owner   string
}

func (r rule) match(p string) bool {
	if strings.HasSuffix(r.pattern, "/") {
		return strings.HasPrefix(p, r.pattern)
	}
	ok, _ := path.Match(r.pattern, p)
	return ok
}

func inRoot(abs string) string { return strings.TrimPrefix(abs, "/") }

// generatedRules are the files build stages write into the image from other
// inputs, with the stage that writes them. They come before the apk
// database: a file a stage rewrites (the hostname) is the stage's even when
// a package installed it first.
func generatedRules() []rule {
	gen := func(pattern, stage string) rule { return rule{pattern, KindGenerated, stage} }
	return []rule{
		gen(inRoot(rootfs.BuildIDFile), "initramfs_create"),
		gen("etc/issue", "initramfs_create"),
		gen("etc/motd", "initramfs_create"),
		gen("etc/rfs/*.fl", "rfs_flists"),
		gen(modules.Stage1ListPath, "modules_copy"),
		gen(modules.Stage2ListPath, "modules_copy"),
		gen(modules.KernelVersionPath, "modules_copy"),
		gen("lib/modules/*/modules.*", "modules_copy"), // depmod's indexes, modules.order
		gen("etc/apk/repositories", "alpine_configure"),
		gen("etc/resolv.conf", "alpine_configure"),
		gen("etc/hostname", "alpine_configure"),
		gen("etc/apk/world", "alpine_packages"),
		gen("etc/apk/arch", "alpine_packages"),
		gen("lib/apk/db/", "alpine_packages"), // apk's own database
		gen("lib/apk/exec/", "alpine_packages"),
	}
}

// configRules are the project's own files, copied from the repository.
func configRules() []rule {
	return []rule{
		{"init", KindConfig, "config/init"},
		{inRoot(zinit.ConfigDir) + "/", KindConfig, "zinit/"},
	}
}

// owners explains the files of one image.
type owners struct {
	apk        map[string]string // path -> apk package
	components map[string]string // path -> component
	firmware   map[string]bool   // FIRMWARE_DIR entries in the image
}

func newOwners(pkgs []Package, comps []Component, fw []FirmwareEntry) *owners {
	o := &owners{apk: map[string]string{}, components: map[string]string{}, firmware: map[string]bool{}}
	for _, p := range pkgs {
		for _, f := range p.Files {
			o.apk[f] = p.Name
		}
	}
	for _, c := range comps {
		o.components[inRoot(path.Clean(c.InstallPath))] = c.Name
	}
	for _, f := range fw {
		o.firmware[f.Name] = true
	}
	return o
}

// explain returns the kind and owner of the image file p; KindUnknown when
// no rule explains it.
func (o *owners) explain(p string) (Kind, string) {
	for _, r := range generatedRules() {
		if r.match(p) {
			return r.kind, r.owner
		}
	}
	if c, ok := o.components[p]; ok {
		return KindComponent, c
	}
	isModule := strings.HasPrefix(p, "lib/modules/") && modules.IsModuleFile(p)
	isFirmware := strings.HasPrefix(p, "lib/firmware/")
	if pkg, ok := o.apk[p]; ok {
		switch {
		case isModule:
			return KindModule, pkg
		case isFirmware:
			return KindFirmware, pkg
		}
		return KindPackage, pkg
	}
	if isModule {
		return KindModule, OwnerModules
	}
	if isFirmware {
		entry, _, _ := strings.Cut(strings.TrimPrefix(p, "lib/firmware/"), "/")
		if o.firmware[entry] {
			return KindFirmware, FirmwareEntry{Name: entry}.Package()
		}
		return KindUnknown, ""
	}
	for _, r := range configRules() {
		if r.match(p) {
			return r.kind, r.owner
		}
	}
	return KindUnknown, ""
}
