package modules

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// loadFromModinfo builds the index from the module files themselves, as
// depmod would: dependencies from depends=, aliases from alias=, softdeps
// from softdep=. Modules are ranked by modules.order, then by path.
func (ix *Index) loadFromModinfo() error {
	ix.mods, ix.byName = nil, map[string]int{}
	files, err := ix.scanModuleFiles()
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	rank, err := ix.readOrder()
	if err != nil {
		return err
	}
	sort.Slice(paths, func(i, j int) bool {
		ri, iok := rank[uncompressedPath(paths[i])]
		rj, jok := rank[uncompressedPath(paths[j])]
		if iok != jok {
			return iok
		}
		if ri != rj {
			return ri < rj
		}
		return paths[i] < paths[j]
	})
	infos, err := readAllModinfo(ix.Dir, paths)
	if err != nil {
		return err
	}
	for _, p := range paths {
		ix.addModule(NameFromPath(p), p)
	}
	direct := make([][]int, len(ix.mods))
	for i, mi := range infos {
		name := ix.mods[i].name
		for _, d := range mi.Depends() {
			j, ok := ix.byName[d]
			if !ok {
				return fmt.Errorf("module %s (%s) depends on %s, which is not in %s", name, paths[i], d, ix.Dir)
			}
			direct[i] = append(direct[i], j)
		}
		for _, a := range mi.Aliases() {
			ix.addAlias(Normalize(a), name, i)
		}
		for _, sd := range mi.Softdeps() {
			ix.modinfoSoftdeps = append(ix.modinfoSoftdeps, parseSoftdep(name, strings.Fields(sd)))
		}
	}
	for i := range ix.mods {
		deps, err := loadOrder(i, direct, ix.mods)
		if err != nil {
			return err
		}
		ix.mods[i].deps = deps
	}
	return nil
}

// loadOrder returns every module that module i needs, each after its own
// dependencies (a depth-first post-order of depends=).
func loadOrder(i int, direct [][]int, mods []module) ([]int, error) {
	const (
		open = 1
		done = 2
	)
	state := map[int]int{}
	var out []int
	var visit func(int, []string) error
	visit = func(n int, chain []string) error {
		chain = append(chain, mods[n].name)
		switch state[n] {
		case done:
			return nil
		case open:
			return fmt.Errorf("dependency cycle: %s", strings.Join(chain, " -> "))
		}
		state[n] = open
		for _, d := range direct[n] {
			if err := visit(d, chain); err != nil {
				return err
			}
		}
		state[n] = done
		out = append(out, n)
		return nil
	}
	if err := visit(i, nil); err != nil {
		return nil, err
	}
	return out[:len(out)-1], nil // the module itself comes last
}

// readOrder maps each path of modules.order to its line number.
func (ix *Index) readOrder() (map[string]int, error) {
	rank := map[string]int{}
	p := filepath.Join(ix.Dir, "modules.order")
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return rank, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		if _, ok := rank[sc.Text()]; !ok {
			rank[strings.TrimSpace(sc.Text())] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return rank, nil
}

// readAllModinfo reads the .modinfo of every path (relative to dir), a few
// files at a time.
func readAllModinfo(dir string, paths []string) ([]Modinfo, error) {
	infos := make([]Modinfo, len(paths))
	errs := make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				infos[i], errs[i] = ReadModinfo(filepath.Join(dir, paths[i]))
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	return infos, errors.Join(errs...)
}
