package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/zosbuilder/pkg/config"
)

// source is the pipeline package's code, parsed: its functions, its Env
// methods, and the methods of its other types.
type source struct {
	funcs   map[string]*ast.FuncDecl            // top-level functions
	methods map[string]map[string]*ast.FuncDecl // receiver type -> name -> method
}

func parseSource(t *testing.T) *source {
	t.Helper()
	src := &source{funcs: map[string]*ast.FuncDecl{}, methods: map[string]map[string]*ast.FuncDecl{}}
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".go") || strings.HasSuffix(ent.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, ent.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fd.Recv == nil {
				src.funcs[fd.Name.Name] = fd
				continue
			}
			typ := fd.Recv.List[0].Type
			if star, ok := typ.(*ast.StarExpr); ok {
				typ = star.X
			}
			name := typ.(*ast.Ident).Name
			if src.methods[name] == nil {
				src.methods[name] = map[string]*ast.FuncDecl{}
			}
			src.methods[name][fd.Name.Name] = fd
		}
	}
	return src
}

// reads is what a stage's spec and the code it reaches read from the config.
type reads struct {
	fields  map[string]bool // fields of config.Config (build.conf keys and the lists)
	methods map[string]bool // methods of config.Config (ModuleNames, ...)
	files   map[string]bool // config file names passed to Env.configFile
}

// walk collects what fn reads, following calls to the package's functions,
// to Env methods, and to the methods of package types it builds.
func (src *source) walk(fn *ast.FuncDecl, r *reads, seen map[*ast.FuncDecl]bool) {
	if fn == nil || seen[fn] {
		return
	}
	seen[fn] = true
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.SelectorExpr); ok && x.Sel.Name == "cfg" {
				r.fields[n.Sel.Name] = true
			}
		case *ast.CallExpr:
			switch f := n.Fun.(type) {
			case *ast.Ident:
				src.walk(src.funcs[f.Name], r, seen)
			case *ast.SelectorExpr:
				if x, ok := f.X.(*ast.SelectorExpr); ok && x.Sel.Name == "cfg" {
					r.methods[f.Sel.Name] = true
				}
				if f.Sel.Name == "configFile" && len(n.Args) == 1 {
					if arg, ok := n.Args[0].(*ast.SelectorExpr); ok {
						r.files[configFileNames[arg.Sel.Name]] = true
					}
				}
				if m := src.methods["Env"][f.Sel.Name]; m != nil && isEnv(f.X) {
					src.walk(m, r, seen)
				}
			}
		case *ast.CompositeLit:
			if id, ok := n.Type.(*ast.Ident); ok {
				for _, m := range src.methods[id.Name] {
					src.walk(m, r, seen)
				}
			}
		}
		return true
	})
}

// isEnv reports whether x is the package's *Env as its code names it: e, or
// x.e (lazyApk's).
func isEnv(x ast.Expr) bool {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name == "e"
	case *ast.SelectorExpr:
		return x.Sel.Name == "e"
	}
	return false
}

var configFileNames = map[string]string{
	"BuildConfFile": config.BuildConfFile, "RFSConfFile": config.RFSConfFile, "PackagesFile": config.PackagesFile,
	"SourcesFile": config.SourcesFile, "ModulesFile": config.ModulesFile, "FirmwareFile": config.FirmwareFile,
	"KernelConfigFile": config.KernelConfigFile, "InitFile": config.InitFile,
}

// listFiles maps the config lists (fields and methods of config.Config) to
// the file they come from.
var listFiles = map[string]string{
	"Packages": config.PackagesFile, "Components": config.SourcesFile, "Modules": config.ModulesFile,
	"ModuleNames": config.ModulesFile, "Firmware": config.FirmwareFile, "FirmwareNames": config.FirmwareFile,
	"RFS": config.RFSConfFile,
}

// unfingerprinted are build.conf keys a stage may read without recording
// them: where the work folders are (their content is what counts, through
// inputs and outputs), how many jobs run at once, and where the build runs.
var unfingerprinted = []string{"INSTALL_DIR", "COMPONENTS_DIR", "KERNEL_DIR", "DIST_DIR", "CACHE_DIR", "STATE_DIR",
	"FIRMWARE_DIR", "JOBS", "RFS_JOBS", "CONTAINER_RUNTIME"}

// derivedReads are config files of which a stage reads one part only and
// records that part in its Config instead of the whole file: alpine_extract
// restarts the image when a component's install path changes, not when
// its version does.
var derivedReads = map[string]struct{ file, key string }{
	"alpine_extract": {config.SourcesFile, "component install paths"},
}

// buildKeys maps config.Build's field names to their build.conf keys.
func buildKeys() map[string]string {
	keys := map[string]string{}
	typ := reflect.TypeFor[config.Build]()
	for i := range typ.NumField() {
		if k := typ.Field(i).Tag.Get("key"); k != "" {
			keys[typ.Field(i).Name] = k
		}
	}
	return keys
}

// Every build.conf key and config file a stage's code reads is part of its
// fingerprint, or of the fingerprint of a stage it depends on (whose rerun
// reruns it): otherwise changing it would leave a stale result in place.
func TestStagesFingerprintWhatTheyRead(t *testing.T) {
	src := parseSource(t)
	keys := buildKeys()
	e := load(t, project(t, true)) // with rfs.conf, so rfs_flists lists it
	specsByName := specs(t, e)

	// What each stage, and everything upstream of it, records.
	recorded := map[string]map[string]bool{}
	for _, d := range pipeline() {
		rec := map[string]bool{}
		s := specsByName[d.name]
		for k := range s.Config {
			rec["key "+k] = true
		}
		for _, in := range s.Inputs {
			rec["path "+in] = true
		}
		for _, dep := range d.deps {
			for k := range recorded[dep] {
				rec[k] = true
			}
		}
		recorded[d.name] = rec
	}

	for _, d := range pipeline() {
		fnName := runtime.FuncForPC(reflect.ValueOf(d.spec).Pointer()).Name()
		fnName = fnName[strings.LastIndex(fnName, ".")+1:]
		fn := src.funcs[fnName]
		if fn == nil {
			t.Fatalf("stage %s: spec function %s not found in the package source", d.name, fnName)
		}
		r := &reads{fields: map[string]bool{}, methods: map[string]bool{}, files: map[string]bool{}}
		src.walk(fn, r, map[*ast.FuncDecl]bool{})
		rec := recorded[d.name]
		for field := range r.fields {
			if key, ok := keys[field]; ok && !rec["key "+key] && !slices.Contains(unfingerprinted, key) {
				t.Errorf("stage %s reads %s but neither it nor a stage upstream records it in Config", d.name, key)
			}
		}
		files := r.files
		for name := range r.fields {
			if f, ok := listFiles[name]; ok {
				files[f] = true
			}
		}
		for name := range r.methods {
			if f, ok := listFiles[name]; ok {
				files[f] = true
			}
		}
		for f := range files {
			if f == "" {
				t.Errorf("stage %s reads a config file the test does not know", d.name)
				continue
			}
			if dr, ok := derivedReads[d.name]; ok && dr.file == f && specsByName[d.name].Config[dr.key] != "" {
				continue
			}
			if !rec["path "+e.configFile(f)] {
				t.Errorf("stage %s reads %s but neither it nor a stage upstream lists it in Inputs", d.name, f)
			}
		}
	}
}

// The walk finds what it should: a stage reading a key it does not record
// is caught (the check above could otherwise pass by finding nothing).
func TestReadsWalkFindsReads(t *testing.T) {
	src := parseSource(t)
	r := &reads{fields: map[string]bool{}, methods: map[string]bool{}, files: map[string]bool{}}
	src.walk(src.funcs["rfsFlists"], r, map[*ast.FuncDecl]bool{})
	for _, want := range []string{"EnableRFS", "FirmwareTag", "RFSJobs", "SourceDateEpoch", "KernelVersion", "KernelModulesDir", "RFS"} {
		if !r.fields[want] {
			t.Errorf("rfs_flists: the walk did not find the read of cfg.%s (found %v)", want, r.fields)
		}
	}
	if !r.files[config.KernelConfigFile] {
		t.Errorf("rfs_flists: the walk did not find kernel.config (read through fullVersion): %v", r.files)
	}
}
