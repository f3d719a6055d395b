package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/pelletier/go-toml/v2"
	"github.com/skiff-containers/skiff/errdefs"
)

// DefaultConfigFile is where skiffd looks for its configuration.
const DefaultConfigFile = "/etc/skiff/skiffd.toml"

// FileConfig is skiffd's configuration file: every key is also a flag of
// the same name, and a flag given on the command line wins.
type FileConfig struct {
	Root               string   `toml:"root"`
	State              string   `toml:"state"`
	Socket             string   `toml:"socket"`
	Runtime            string   `toml:"runtime"`
	Shim               string   `toml:"shim"`
	Snapshotter        string   `toml:"snapshotter"`
	InsecureRegistries []string `toml:"insecure-registries"`
	LogLevel           string   `toml:"log-level"`
	LogFormat          string   `toml:"log-format"`
	CNIBinDirs         []string `toml:"cni-bin-dir"`
	DefaultBridge      string   `toml:"default-bridge"`
	DefaultSubnet      string   `toml:"default-subnet"`
}

// LoadConfigFile reads path. A missing file is an empty configuration
// unless required; unknown keys are refused, naming the key.
func LoadConfigFile(path string, required bool) (FileConfig, error) {
	var fc FileConfig
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("config file %s: %w", path, err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		var sme *toml.StrictMissingError
		if errors.As(err, &sme) {
			return fc, fmt.Errorf("config file %s: %s: %w", path, sme.String(), errdefs.ErrInvalidArgument)
		}
		return fc, fmt.Errorf("config file %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return fc, nil
}
