package staging

import (
	"fmt"
	"strings"
)

// ParseRunArg reads a command argument naming a run: a run id, or a run's
// location (STORE/runs/ID) as burst prints it. loc is the store's location,
// empty when arg is a bare id (the run is then in the default store).
func ParseRunArg(arg string) (loc, id string, err error) {
	id = arg
	if i := strings.LastIndex(arg, "/runs/"); i >= 0 && !strings.Contains(arg[i+len("/runs/"):], "/") {
		loc, id = arg[:i], arg[i+len("/runs/"):]
	} else if strings.Contains(arg, "/") {
		return "", "", fmt.Errorf("%q is neither a run id nor a run location (STORE/runs/ID)", arg)
	}
	if !ValidID(id) {
		return "", "", fmt.Errorf("%q is not a run id", id)
	}
	return loc, id, nil
}
