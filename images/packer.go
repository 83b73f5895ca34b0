package images

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/slicerburst/burst/internal/oneline"
)

// MinPacker is the oldest packer that can build the template: 1.6 knows
// neither plugins nor the IMDSv2 settings.
var MinPacker = [2]int{1, 7}

var packerVersionRe = regexp.MustCompile(`(?m)^Packer v?([0-9]+)\.([0-9]+)\.([0-9]+)`)

// FindPacker finds the packer program name (on PATH, or a path) and checks
// that it is recent enough to build the template. Its errors are one line
// and say what to install.
func FindPacker(ctx context.Context, name string) (string, error) {
	const install = "https://developer.hashicorp.com/packer/install"
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("packer not found (%s): burst image build runs Packer %d.%d or later; install it (%s), or pass --packer-bin PATH", name, MinPacker[0], MinPacker[1], install)
	}
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s version failed (%v): is it packer? %s", path, err, oneline.Clean(oneline.Clip(out.String(), 200)))
	}
	major, minor, patch, ok := ParsePackerVersion(out.String())
	if !ok {
		return "", fmt.Errorf("%s version said %s, not a packer version", path, oneline.Quote(strings.TrimSpace(out.String())))
	}
	if major < MinPacker[0] || major == MinPacker[0] && minor < MinPacker[1] {
		return "", fmt.Errorf("%s is Packer %d.%d.%d, too old: building the image needs Packer %d.%d or later, which installs the amazon plugin and knows the IMDSv2 settings the image uses (Debian's packer package is 1.6); install it (%s), or pass --packer-bin PATH", path, major, minor, patch, MinPacker[0], MinPacker[1], install)
	}
	return path, nil
}

// ParsePackerVersion reads the version from the output of packer version
// ("Packer v1.11.2", maybe followed by an update notice).
func ParsePackerVersion(out string) (major, minor, patch int, ok bool) {
	m := packerVersionRe.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, false
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(m[i+1])
		if err != nil || v > 1<<20 {
			return 0, 0, 0, false
		}
		n[i] = v
	}
	return n[0], n[1], n[2], true
}

// PackerArgs are the arguments of packer init and packer build for the
// template in dir, with the template variables vars in their order.
func PackerArgs(dir string, vars [][2]string) (init, build []string) {
	init = []string{"init", filepath.Join(dir, "plugins")}
	build = []string{"build"}
	for _, v := range vars {
		build = append(build, "-var", v[0]+"="+v[1])
	}
	build = append(build, dir)
	return init, build
}

// BuildSpec is one run of Packer on the embedded template.
type BuildSpec struct {
	// Packer is the packer program, as FindPacker returns it.
	Packer string
	// Vars are the template variables (see variables.pkr.hcl), in order.
	Vars [][2]string
	// Env is packer's environment.
	Env []string
	// Stdout and Stderr take packer's output.
	Stdout, Stderr io.Writer
	// Starting, when set, is called before each packer command with its
	// arguments.
	Starting func(args []string)
}

// Build writes the embedded template to a temporary folder and runs packer
// init, then packer build, on it; the folder is removed after, whatever
// happened. A packer that fails is an error that points at its output;
// when ctx ends, the error is ctx's.
func Build(ctx context.Context, s BuildSpec) error {
	dir, err := os.MkdirTemp("", "burst-image-")
	if err != nil {
		return fmt.Errorf("making a folder for the image template: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := WriteTemplate(dir); err != nil {
		return err
	}
	init, build := PackerArgs(dir, s.Vars)
	for _, args := range [][]string{init, build} {
		if s.Starting != nil {
			s.Starting(args)
		}
		cmd := exec.CommandContext(ctx, s.Packer, args...)
		cmd.Env = s.Env
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, s.Stdout, s.Stderr
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("packer %s failed (%v): see its output above", args[0], err)
		}
	}
	return nil
}

// CheckLinuxAMD64 checks that the file at path is a linux/amd64 program,
// as the burst installed in the image must be.
func CheckLinuxAMD64(path string) error {
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != elf.ELFMAG {
		return errors.New("not a Linux program (workers run linux/amd64)")
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("not a Linux program (%v)", err)
	}
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("a %v program, but workers run linux/amd64", f.Machine)
	}
	return nil
}
