#include "bar.h"
#include "foo.h"

int bar(void) { return foo() + 1; }
