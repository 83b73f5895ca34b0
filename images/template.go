package images

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// template is this folder's Packer template, its plugin requirement and its
// provisioning scripts, as built into the binary.
//
//go:embed *.pkr.hcl plugins/*.pkr.hcl scripts/*.sh
var template embed.FS

// TemplateFiles lists the files of the embedded template, slash-separated
// and relative to the template's folder.
func TemplateFiles() []string {
	var files []string
	_ = fs.WalkDir(template, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	return files
}

// WriteTemplate writes the embedded template into dir, which must exist,
// as packer expects it: the template files in dir, the plugin requirement
// in dir/plugins, the scripts (executable) in dir/scripts. Existing files
// are overwritten.
func WriteTemplate(dir string) error {
	for _, name := range TemplateFiles() {
		data, err := template.ReadFile(name)
		if err != nil {
			return fmt.Errorf("reading embedded %s: %w", name, err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("writing the image template: %w", err)
		}
		perm := os.FileMode(0o644)
		if filepath.Ext(name) == ".sh" {
			perm = 0o755
		}
		if err := os.WriteFile(dst, data, perm); err != nil {
			return fmt.Errorf("writing the image template: %w", err)
		}
	}
	return nil
}
