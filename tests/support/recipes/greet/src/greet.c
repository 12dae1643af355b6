/* Prints GREET_PREFIX/share/greet/message.txt; GREET_PREFIX is the build prefix. */
#include <stdio.h>

int main(void) {
    const char *path = GREET_PREFIX "/share/greet/message.txt";
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    int c;
    while ((c = fgetc(f)) != EOF) {
        putchar(c);
    }
    fclose(f);
    return 0;
}
