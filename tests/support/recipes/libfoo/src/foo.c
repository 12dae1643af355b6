#include "foo.h"

int foo(void) { return 42; }
