package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	conf := func() (string, error) { return "s3://read:pw@gw:443/blobs?region=garage", nil }
	got, err := ParseRoutes("rfs.conf, 80-ff=https://mirror/blobs,00-7f=rfs.conf", conf)
	want := []Route{
		{0, 255, "s3://read:pw@gw:443/blobs?region=garage"},
		{0x80, 0xff, "https://mirror/blobs"},
		{0, 0x7f, "s3://read:pw@gw:443/blobs?region=garage"},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseRoutes = %v, %v; want %v", got, err, want)
	}
	noConf := errors.New("no config/rfs.conf")
	if _, err := ParseRoutes("rfs.conf", func() (string, error) { return "", noConf }); !errors.Is(err, noConf) {
		t.Errorf("rfs.conf without a config: %v", err)
	}
	// Without a resolver rfs.conf is a URL like any other (and no store).
	if got, err := ParseRoutes("rfs.conf", nil); err != nil || got[0].URL != "rfs.conf" {
		t.Errorf("ParseRoutes without resolver = %v, %v", got, err)
	}
	for _, bad := range []string{"", "dir:///a,,dir:///b", "ff-00=dir:///a"} {
		if _, err := ParseRoutes(bad, conf); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("ParseRoutes(%q) = %v, want ErrInvalidURL", bad, err)
		}
	}
}

func TestCheckRoute(t *testing.T) {
	for _, ok := range []string{"dir:///tmp/s", "s3://k:s@h:9000/b?region=r", "s3s://h:443/b", "https://h/b", "zdb://h:9900/ns", "server://http://localhost:8080"} {
		if err := CheckRoute(ok); err != nil {
			t.Errorf("CheckRoute(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"ftp://h/b", "dir://relative", "s3://k:secret@h/b", "nothing", "zdb://h:x:y:%zz"} {
		err := CheckRoute(bad)
		if err == nil {
			t.Errorf("CheckRoute(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckRoute(%q) shows the secret: %v", bad, err)
		}
	}
}
