#include <stdio.h>
#include "bar.h"

int main(void) {
    printf("bar=%d\n", bar());
    return 0;
}
