package android.widget;
public class LinearLayout extends android.view.ViewGroup { public static final int VERTICAL = 1; public LinearLayout(android.content.Context c) { super(c); } public int getOrientation() { return 0; } public void setOrientation(int o) {} }
