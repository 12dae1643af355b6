#ifndef BAR_H
#define BAR_H
int bar(void);
#endif
